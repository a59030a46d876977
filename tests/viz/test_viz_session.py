"""One browser session's memory: carries across runs, resets, refuses what it cannot run, keeps the
last good state when a run diverges, and orders runs against resets."""
import threading

import math

import pytest
import torch

from nested_learning import Ablation
from nested_learning.recording import record
from nested_learning.viz import guard, session as session_module
from nested_learning.viz.session import MemorySession, RunDiscarded, RunRefused
from tests.support.models import diverging_model


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


def test_divergence_names_token_and_layer_and_keeps_the_last_good_state():
    model = diverging_model()
    s = MemorySession("tiny")
    s.run(model, "abc")
    before, last = _memory(s.state), s.last
    with pytest.raises(RunRefused) as error:
        s.run(model, "xyzw")
    message = str(error.value)
    assert "token 2 (character z), stream position 5, layer 0" in message
    assert s.position == 3 and torch.equal(_memory(s.state), before) and s.last is last
    assert s.run(model, "abc").recording.start_position == 3  # the kept state still works


def test_a_run_finishing_after_a_reset_is_discarded(model, monkeypatch):
    """Streamlit reruns the page in a new thread while the old run still computes: Reset lands first."""
    s = MemorySession("tiny")
    s.run(model, "abc")
    real = session_module.guarded_record_in_pieces

    def reset_during_the_run(*args, **kwargs):
        result = real(*args, **kwargs)
        s.reset()  # pressed while the model was reading
        return result

    monkeypatch.setattr(session_module, "guarded_record_in_pieces", reset_during_the_run)
    with pytest.raises(RunDiscarded, match="discarded: the memory was reset"):
        s.run(model, "two thousand bytes, say")
    assert s.state is None and s.position == 0 and s.last is None and s.runs == 0
    monkeypatch.setattr(session_module, "guarded_record_in_pieces", real)
    assert s.run(model, "again").recording.start_position == 0


def test_concurrent_runs_of_one_session_commit_one_and_discard_the_other(model, monkeypatch):
    s = MemorySession("tiny")
    both_read = threading.Barrier(2, timeout=30)
    real = session_module.guarded_record_in_pieces

    def read_together(*args, **kwargs):
        result = real(*args, **kwargs)
        both_read.wait()  # both runs started from the same memory and finished reading
        return result

    monkeypatch.setattr(session_module, "guarded_record_in_pieces", read_together)
    outcomes = {}

    def run(text):
        try:
            outcomes[text] = s.run(model, text).recording.n_tokens
        except RunDiscarded:
            outcomes[text] = "discarded"

    threads = [threading.Thread(target=run, args=(text,)) for text in ("first text", "second, longer text")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(map(str, outcomes.values()))[-1] == "discarded" and s.runs == 1
    committed = next(n for n in outcomes.values() if n != "discarded")
    assert s.position == committed  # the memory read one text, never half of both


def test_summary(model):
    rec, _ = record(model, "abcdefabcdef")
    s = rec.summary()
    loss = rec.stream("loss")[:-1].double().mean().item()
    assert s["tokens"] == 12 and math.isclose(s["mean_loss"], loss)
    assert math.isclose(s["bits_per_byte"], loss / math.log(2))
    expected = torch.stack([rec.stream(f"layers.{i}.memory.surprise").double().mean() for i in (0, 1)]).mean()
    assert math.isclose(s["mean_surprise"], float(expected))


def test_a_run_past_its_deadline_keeps_the_pieces_it_read(model, monkeypatch):
    monkeypatch.setattr(session_module, "PIECE_TOKENS", 16)
    text = "the cat sat on the mat. " * 4  # 96 tokens: 6 pieces
    s = MemorySession("tiny")
    result = s.run(model, text, deadline_s=0.0)  # past the deadline after the first piece
    assert not result.complete and result.recording.n_tokens == 16 and s.position == 16
    assert "after 16 of 96 tokens" in result.partial_notice(0.0)
    whole, _ = record(model, text)
    torch.testing.assert_close(result.recording.stream("loss")[:-1], whole.stream("loss")[:15])
    assert math.isnan(float(result.recording.stream("loss")[-1]))  # its target was not read
    rest = s.run(model, text[16:])  # the memory continues from what was read
    torch.testing.assert_close(rest.recording.stream("loss")[:-1], whole.stream("loss")[16:-1], rtol=1e-4, atol=1e-5)


def test_pieces_add_up_to_one_call(model, monkeypatch):
    monkeypatch.setattr(session_module, "PIECE_TOKENS", 20)
    text = "a memory that reads in pieces reads the same text. " * 2
    result = MemorySession("tiny").run(model, text)
    whole, _ = record(model, text)
    assert result.complete and result.partial_notice(1.0) is None
    for name in ("loss", "layers.0.memory.surprise", "layers.1.cms.input"):
        torch.testing.assert_close(result.recording.stream(name), whole.stream(name), rtol=1e-4, atol=1e-5, equal_nan=True)


def test_a_reset_stops_a_run_at_its_next_piece(model, monkeypatch):
    monkeypatch.setattr(session_module, "PIECE_TOKENS", 8)
    s = MemorySession("tiny")
    pieces = []
    real_record = guard.record

    def count_and_reset(*args, **kwargs):
        pieces.append(1)
        if len(pieces) == 2:
            s.reset()  # pressed while the second piece is read
        return real_record(*args, **kwargs)

    monkeypatch.setattr(guard, "record", count_and_reset)
    with pytest.raises(RunDiscarded):
        s.run(model, "x" * 64)  # 8 pieces
    assert len(pieces) == 2 and s.state is None


def test_the_session_lists_every_run_and_keeps_the_last_recordings(model, monkeypatch):
    monkeypatch.setattr(session_module, "KEPT_RECORDINGS", 2)
    s = MemorySession("tiny")
    for i, text in enumerate(["first text", "second text", "third one"]):
        s.run(model, text, Ablation(memory=False) if i == 1 else None)
    assert [e.name for e in s.history] == ["Run 1", "Run 2", "Run 3"]
    assert [e.start for e in s.history] == [0, 10, 21] and s.history[1].off == ("memory",)
    assert s.history[2].excerpt == "third one" and all(e.complete for e in s.history)
    assert list(s.recordings) == ["Run 2", "Run 3"] and s.recordings["Run 3"] is s.last.recording
    s.reset()
    assert s.history == [] and s.recordings == {}


def test_overlay_figure_puts_runs_on_one_axis(model):
    from nested_learning.viz.timelines import overlay_figure
    a, state = record(model, "abc abc abc")
    b, _ = record(model, "abcd", state=state)
    figure = overlay_figure({"Run 1": a, "Run 2": b})
    assert [t.name for t in figure.data] == ["Run 1", "Run 1", "Run 2", "Run 2"]
    assert list(figure.data[2].x) == [0, 1, 2, 3]  # token index in its run, not stream position


def test_a_reset_after_run_was_pressed_discards_the_run(model):
    """Issue 29 item 3: a Reset between the click and the run's start (a queue, a slow page) was undone: the
    run read from the fresh memory and landed as "Run 1"."""
    s = MemorySession("tiny")
    s.run(model, "first run. ")
    asked_at = s.version  # Run pressed here
    s.reset()  # then Reset, before the run starts
    with pytest.raises(RunDiscarded, match="reset after Run was pressed"):
        s.run(model, "second run", asked_at=asked_at)
    assert s.position == 0 and s.runs == 0 and s.last is None


def test_a_run_whose_page_closed_stops_at_the_next_piece_and_is_discarded(model, monkeypatch):
    """Issue 29 item 7: a run kept computing after its tab closed."""
    read = []
    real = session_module.guarded_record_in_pieces

    def counting(*args, keep_going, **kwargs):
        return real(*args, keep_going=lambda n: read.append(n) or keep_going(n), **kwargs)

    monkeypatch.setattr(session_module, "guarded_record_in_pieces", counting)
    s = MemorySession("tiny")
    with pytest.raises(RunDiscarded, match="the page that asked for it was closed"):
        s.run(model, "x" * 1500, still_wanted=lambda: False)  # closed while the first piece is read
    assert read == [session_module.PIECE_TOKENS] and s.position == 0 and s.runs == 0


def test_out_of_device_memory_is_one_line_and_the_memory_kept(model, monkeypatch):
    """Issue 29 item 7: torch.OutOfMemoryError (simulated: CI has no GPU) reached the page as an exception."""
    s = MemorySession("tiny")
    s.run(model, "kept. ")
    before = s.state

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(session_module, "guarded_record_in_pieces", out_of_memory)
    with pytest.raises(RunRefused, match=r"^The CPU ran out of memory reading 10 tokens: .* The memory was kept") as info:
        s.run(model, "0123456789")
    assert "\n" not in str(info.value) and s.state is before and s.runs == 1


def test_a_too_long_input_is_offered_its_first_tokens(model):
    s = MemorySession("tiny")
    text = "é" * 1500  # 3,000 bytes
    with pytest.raises(RunRefused, match=r"Shorten it by 952 tokens, or keep its first 2048\."):
        s.check_length(3000)
    kept = session_module.first_tokens(text, s.room())
    assert kept == "é" * 1024 and len(kept.encode()) == 2048
    assert session_module.first_tokens("aé", 2) == "a"  # never half a character
