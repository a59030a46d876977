"""The dashboard's one finiteness guard: memory, state and output (loss, probabilities) are checked,
the first bad token and layer named; Explore, Compare and the lessons all refuse through it."""
import re
import pytest
import torch

from nested_learning import Ablation
from nested_learning.recording import record
from nested_learning.viz import compare, lessons
from nested_learning.viz import guard
from nested_learning.viz.guard import OUTPUT_LAYER, RunRefused, guarded_record, guarded_record_in_pieces, locate_divergence, non_finite
from nested_learning.viz.session import MemorySession
from tests.conftest import tiny_model
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


def _degenerate_model():
    """Issue 29 item 4: the embedding scaled by 1e36 normalises to a constant output: loss ln 256 on every token."""
    model = tiny_model()
    with torch.no_grad():
        model.embed.weight.mul_(1e36)
    return model


def test_a_small_vocabulary_refuses_bytes_it_has_no_token_for_in_one_line():
    """Issue 29 item 1: vocab_size 128 and "héllo wörld" crashed Explore (RecordingError from the recorder)."""
    model = tiny_model(vocab_size=128)
    s = MemorySession("small")
    with pytest.raises(RunRefused, match=r"reads bytes 0-127 only \(vocab_size 128\): token 1 of the input is byte 195") as info:
        s.run(model, "héllo wörld")
    assert "\n" not in str(info.value) and s.state is None and s.runs == 0
    assert s.run(model, "hello world").recording.n_tokens == 11  # ASCII fits
    with pytest.raises(RunRefused, match="vocab_size 128"):
        compare.run_side(model, "héllo", Ablation(), "A")


def test_a_vocabulary_of_four_keeps_four_predictions_per_token():
    """Five predictions per token were asked of every model: vocab_size <= 4 failed every run."""
    model = tiny_model(vocab_size=4)
    recording = MemorySession("four").run(model, "\x00\x01\x02\x03\x02\x01").recording
    assert tuple(recording.stream("topk.ids").shape) == (6, 4)
    assert guarded_record(model, "\x03\x02\x01")[0].stream("topk.probs").shape[1] == 4


def test_a_degenerate_model_is_named_in_one_line_and_the_memory_kept(model):
    s = MemorySession("degenerate")
    s.run(model, "a good run first. ")
    before = s.state.layers[0].memory.memory.clone()
    bad = _degenerate_model()
    with pytest.raises(RunRefused, match=r"^This model is degenerate: its predictions are uniform over all 256 bytes "
                                         r"on every token \(loss ln 256 = 5.545 nats\)") as info:
        s.run(bad, "the cat sat on the mat.")
    assert "\n" not in str(info.value) and s.runs == 1 and torch.equal(s.state.layers[0].memory.memory, before)
    with pytest.raises(RunRefused, match="degenerate"):
        guarded_record(bad, "the cat sat on the mat.")


def test_an_untrained_model_is_not_called_degenerate(model):
    recording, _ = guarded_record(model, "the cat sat on the mat.")  # a random init's predictions are not uniform
    assert guard.degenerate(recording) is None


def test_a_deep_memory_is_recorded_in_one_call_and_in_pieces_alike():
    """The 2-layer memory (memory_depth 2) runs on the dashboard: a run read in pieces rebuilds both of its
    matrices as one call does (anchors and initial weights are the first piece's, not concatenated)."""
    model = tiny_model(memory_depth=2)
    whole, _ = guarded_record(model, "the cat sat on the mat. the cat sat.")
    pieces = guarded_record_in_pieces(model, "the cat sat on the mat. the cat sat.", piece_tokens=8).recording
    assert pieces.meta["pieces"] > 1
    for matrix in ("memory", "hidden_memory"):
        assert torch.allclose(pieces.memory_matrix(1, 0, 30, matrix), whole.memory_matrix(1, 0, 30, matrix), rtol=1e-4, atol=1e-5)


def test_an_lm_objective_model_is_recorded_in_one_call_and_in_pieces_alike():
    """cms_objective "lm" runs on the dashboard: its levels learn from the text's next tokens as it is read,
    and a run read in pieces whose seams fall on block ends gives one call's CMS weights, events and losses
    (a seam inside a block cuts the gradient's paths there: docs/model-options.md "Across calls")."""
    model = tiny_model(cms_objective="lm", cms_periods=[2, 8])
    text = "the cat sat on the mat. the cat sat."
    whole, state = guarded_record(model, text)
    pieces = guarded_record_in_pieces(model, text, piece_tokens=8).recording
    assert pieces.meta["pieces"] > 1
    for level in (0, 1):
        assert torch.allclose(pieces.cms_weights(1, level, 30), whole.cms_weights(1, level, 30), rtol=1e-4, atol=1e-6)
    assert torch.equal(whole.cms_weights(0, 1, len(text) - 1), state.layers[0].cms[1].memory[0, 0])
    assert torch.allclose(pieces.stream("loss")[:-1], whole.stream("loss")[:-1], rtol=1e-4, atol=1e-5)
    assert pieces.cms_events()["token_index"].tolist() == whole.cms_events()["token_index"].tolist()
