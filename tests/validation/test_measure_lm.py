"""A model whose CMS levels learn from the next-token loss is measured as it reads: with the next tokens."""
import torch

from nested_learning.model import IGNORE
from nested_learning.validation import updates
from nested_learning.validation.measure import score
from nested_learning.validation.targets import read
from tests.conftest import random_tokens, tiny_model


def lm_model():
    return tiny_model("hope", cms_objective="lm", cms_periods=(2, 4), dtype=torch.float64)


def test_score_gives_an_lm_model_the_next_tokens():
    """Its levels update (the state differs from a read without targets), exactly as the model called with
    the next tokens (the last one unknown) updates them."""
    model, tokens = lm_model(), random_tokens(2, 24)
    scored = score(model, tokens)
    with torch.no_grad():
        want = model(tokens, targets=torch.cat([tokens[:, 1:], torch.full_like(tokens[:, :1], IGNORE)], 1))
        blind = model(tokens)
    level = lambda state: state.layers[0].cms[0].memory
    assert torch.equal(level(scored.state), level(want.state))
    assert not torch.allclose(level(scored.state), level(blind.state))
    torch.testing.assert_close(scored.logits, want.logits.float())


def test_reading_an_lm_model_in_calls_equals_one_call():
    """Each call's last target is the next call's first token, so calls of 10 equal one call of 30."""
    model, tokens = lm_model(), random_tokens(2, 30)
    whole, parts = read(model, tokens), read(model, tokens, call_tokens=10)
    torch.testing.assert_close(parts.loss, whole.loss, rtol=1e-9, atol=1e-9, equal_nan=True)
    torch.testing.assert_close(parts.state.layers[1].cms[1].memory, whole.state.layers[1].cms[1].memory)


def test_the_memory_updates_property_sees_an_lm_models_levels_write_on_schedule():
    """Read with the next tokens, each lm level writes in exactly its scheduled calls (without them it never
    wrote, and the property failed an lm model for a memory that works)."""
    result = updates.run(lm_model(), n_sequences=2)
    assert result.passed, result.checks
    cms = [row for row in result.tables["per_component"] if row["component"].startswith("cms.")]
    assert cms and all(row["calls_that_wrote"] == row["calls_that_must_write"] > 0 for row in cms)
