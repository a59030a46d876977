"""Continuing a prompt from a session's memory, a reset memory and a baseline; the session untouched."""
import pytest
import torch

from nested_learning.recording import record
from nested_learning.viz.generation import MAX_GENERATED_TOKENS, continuations, continue_prompt
from nested_learning.viz.guard import RunRefused
from tests.conftest import tiny_model


def test_the_memory_is_read_not_changed_and_matches_generate(model):
    _, state = record(model, "a passage the memory has read once already")
    before = {name: t.clone() for name, t in state.layers[0].tensors().items()}
    text = continue_prompt(model, "a passage", state, max_new_tokens=12)
    assert all(torch.equal(before[name], t) for name, t in state.layers[0].tensors().items())
    expected = model.generate(torch.tensor([list(b"a passage")]), state=state.clone(), max_new_tokens=12).tokens[0]
    assert text == bytes(expected.tolist()).decode("utf-8", errors="replace")


def test_three_sources_with_the_same_prompt_and_seed(model):
    _, state = record(model, "the memory read this text")
    rows = continuations(model, "the", state, tiny_model("transformer"), max_new_tokens=8, temperature=1.0, seed=3)
    assert [r.source for r in rows] == ["this model, your memory", "this model, a reset memory", "the baseline transformer"]
    assert [r.memory_tokens for r in rows] == [25, 0, 0]
    assert rows[1].text == continue_prompt(model, "the", None, 8, 1.0, 3)  # seeded: reproducible
    assert rows[0].text == continue_prompt(model, "the", state, 8, 1.0, 3)  # written from the session's memory
    prompt = torch.tensor([list(b"the")])
    with torch.no_grad():  # and that memory changes what the model would write next
        assert not torch.allclose(model(prompt, state=state.clone()).logits, model(prompt).logits)
    assert len(continuations(model, "the", None, None, 8)) == 2


@pytest.mark.parametrize("prompt, n, temperature, message", [
    ("", 8, 0.0, "Type a prompt"),
    ("x" * 513, 8, 0.0, "513 tokens; at most 512"),
    ("x", 0, 0.0, f"1 to {MAX_GENERATED_TOKENS}"),
    ("x", 8, float("nan"), "between 0 and 5"),
])
def test_bad_settings_are_refused_in_one_line(model, prompt, n, temperature, message):
    with pytest.raises(RunRefused, match=message):
        continue_prompt(model, prompt, None, n, temperature)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_model_with_non_finite_predictions_is_refused_not_continued(temperature):
    """Issue 29 item 5: greedy returned text picked from NaN outputs; sampling raised RuntimeError."""
    from tests.support.models import exploding_output_model
    with pytest.raises(RunRefused, match=r"^The model's predictions on the prompt are non-finite") as info:
        continuations(exploding_output_model(), "abc", None, None, max_new_tokens=8, temperature=temperature)
    assert "\n" not in str(info.value)


def test_a_degenerate_model_and_foreign_bytes_are_refused_in_one_line():
    degenerate = tiny_model()
    with torch.no_grad():
        degenerate.embed.weight.mul_(1e36)  # loss ln 256 everywhere: greedy wrote "\x00..."
    with pytest.raises(RunRefused, match="This model is degenerate: its predictions are uniform over all 256 bytes"):
        continue_prompt(degenerate, "the cat sat", max_new_tokens=8)
    with pytest.raises(RunRefused, match=r"vocab_size 128\): token 0 of the input is byte 195"):
        continue_prompt(tiny_model(vocab_size=128), "é", max_new_tokens=4)
