"""The dashboard's one finiteness guard: memory, state and output (loss, probabilities) are checked,
the first bad token and layer named; Explore, Compare and the lessons all refuse through it."""
import pytest
import torch

from nested_learning import Ablation
from nested_learning.recording import record
from nested_learning.viz import compare, lessons
from nested_learning.viz.guard import OUTPUT_LAYER, RunRefused, guarded_record, locate_divergence, non_finite
from nested_learning.viz.session import MemorySession
from tests.support.models import diverging_model, exploding_output_model


def test_non_finite_is_none_for_a_good_run(model):
    assert non_finite(*record(model, "all fine here")) is None


def test_non_finite_reads_the_state_too(model):
    rec, state = record(model, "abc")
    state.layers[1].cms[0].pending[...] = float("nan")  # nothing the streams show
    assert non_finite(rec, state) == (1, "state cms.0.pending")


def test_locate_divergence_finds_the_first_bad_token_late_in_a_run():
    model = diverging_model()
    tokens = torch.tensor(list(b"a long and harmless prefix, then z and more"))
    state = model.init_state(1)
    found = locate_divergence(model, tokens, state, Ablation())
    assert found.token_index == bytes(tokens.tolist()).index(b"z") and found.layer == 0


def test_an_output_that_overflows_is_caught_though_every_state_is_finite():
    model = exploding_output_model()
    rec, state = record(model, "abc")
    assert non_finite(rec, state)[0] == OUTPUT_LAYER


def test_a_session_refuses_an_overflowing_output_and_keeps_its_memory():
    s = MemorySession("huge")
    with pytest.raises(RunRefused, match=r"diverged at token 0 \(character a\), stream position 0: the model's"):
        s.run(exploding_output_model(), "abc")
    assert s.state is None and s.last is None


def test_compare_and_lessons_refuse_a_diverging_run_naming_the_token():
    model = diverging_model()
    with pytest.raises(RunRefused, match=r"^B: The run diverged at token 3 \(character z\)"):
        compare.run_side(model, "abcz", Ablation(), "B")
    with pytest.raises(RunRefused, match="character z"):
        lessons.repetition(model, "zoo ", 2)
    with pytest.raises(RunRefused, match="character z"):
        lessons.forgetting(model, "fizz")
    with pytest.raises(RunRefused, match="the model's"):
        lessons.association_recall(exploding_output_model())


def test_guarded_record_leaves_the_state_it_started_from_alone():
    model = diverging_model()
    _, state = record(model, "abc")
    before = state.layers[0].memory.memory.clone()
    with pytest.raises(RunRefused):
        guarded_record(model, "xyz", state=state)
    assert torch.equal(state.layers[0].memory.memory, before) and state.position == 3
