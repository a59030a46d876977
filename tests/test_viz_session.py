"""One browser session's memory: carries across runs, resets, refuses what it cannot run, and keeps
the last good state when a run diverges."""
import math

import pytest
import torch

from nested_learning import Ablation
from nested_learning.recording import record
from nested_learning.viz import session as session_module
from nested_learning.viz.session import MemorySession, RunRefused, locate_divergence, non_finite
from tests.conftest import tiny_model


def _memory(state):
    return state.layers[0].memory.memory.clone()


def test_memory_carries_across_runs_and_reset_forgets(model):
    s = MemorySession("tiny")
    first = s.run(model, "the cat sat. ").recording
    second = s.run(model, "the cat sat again.").recording
    assert s.position == first.n_tokens + second.n_tokens and s.runs == 2
    assert second.start_position == first.n_tokens
    whole, _ = record(model, "the cat sat. the cat sat again.")
    torch.testing.assert_close(second.stream("loss")[:-1], whole.stream("loss")[first.n_tokens:-1], rtol=1e-4, atol=1e-5)
    s.reset()
    assert s.position == 0 and s.last is None
    fresh = s.run(model, "the cat sat again.").recording
    alone, _ = record(model, "the cat sat again.")
    assert fresh.start_position == 0
    torch.testing.assert_close(fresh.stream("loss"), alone.stream("loss"), equal_nan=True)


def test_ablation_is_per_run(model):
    s = MemorySession("tiny")
    rec = s.run(model, "abcabc", Ablation(memory=False)).recording
    assert rec.memory_layers == [] and rec.ablation.names_off() == ["memory"]
    assert s.run(model, "abc").recording.memory_layers == [0, 1]


def test_length_limits_refuse_with_counts_and_leave_the_session_alone(model, monkeypatch):
    s = MemorySession("tiny")
    s.run(model, "hello")
    before = _memory(s.state)
    with pytest.raises(RunRefused, match=r"input is 2049 tokens .* at most 2048\. Shorten it by 1"):
        s.run(model, "x" * 2049)
    with pytest.raises(RunRefused, match="empty"):
        s.run(model, "")
    monkeypatch.setattr(session_module, "MAX_SESSION_TOKENS", 8)
    with pytest.raises(RunRefused, match="holds 5 tokens and this input adds 4.*at most 8"):
        s.run(model, "four")
    assert s.position == 5 and torch.equal(_memory(s.state), before)


def test_emoji_and_control_characters_run(model):
    rec = MemorySession("tiny").run(model, "hi \U0001F600\x07\x00\n").recording
    assert rec.n_tokens == len("hi \U0001F600\x07\x00\n".encode("utf-8"))


def _diverging_model():
    """Byte "z" embeds to infinity: the first "z" turns layer 0 non-finite."""
    model = tiny_model()
    with torch.no_grad():
        model.embed.weight[ord("z")] = float("inf")
    return model


def test_divergence_names_token_and_layer_and_keeps_the_last_good_state():
    model = _diverging_model()
    s = MemorySession("tiny")
    s.run(model, "abc")
    before, last = _memory(s.state), s.last
    with pytest.raises(RunRefused) as error:
        s.run(model, "xyzw")
    message = str(error.value)
    assert "token 2 (character z), stream position 5, layer 0" in message
    assert s.position == 3 and torch.equal(_memory(s.state), before) and s.last is last
    assert s.run(model, "abc").recording.start_position == 3  # the kept state still works


def test_non_finite_is_none_for_a_good_run(model):
    assert non_finite(*record(model, "all fine here")) is None


def test_non_finite_reads_the_state_too(model):
    rec, state = record(model, "abc")
    state.layers[1].cms[0].pending[...] = float("nan")  # nothing the streams show
    assert non_finite(rec, state) == (1, "state cms.0.pending")


def test_locate_divergence_finds_the_first_bad_token_late_in_a_run():
    model = _diverging_model()
    tokens = torch.tensor(list(b"a long and harmless prefix, then z and more"))
    state = model.init_state(1)
    found = locate_divergence(model, tokens, state, Ablation())
    assert found.token_index == bytes(tokens.tolist()).index(b"z") and found.layer == 0


def test_summary(model):
    rec, _ = record(model, "abcdefabcdef")
    s = rec.summary()
    loss = rec.stream("loss")[:-1].double().mean().item()
    assert s["tokens"] == 12 and math.isclose(s["mean_loss"], loss)
    assert math.isclose(s["bits_per_byte"], loss / math.log(2))
    expected = torch.stack([rec.stream(f"layers.{i}.memory.surprise").double().mean() for i in (0, 1)]).mean()
    assert math.isclose(s["mean_surprise"], float(expected))
