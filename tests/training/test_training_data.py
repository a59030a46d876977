"""Packing, the held-out split, task mixing and the data position that resume restores."""
import pytest
import torch

from nested_learning.training.data import (TextStream, TrainBatches, heldout_sequences, is_heldout, is_task_sequence,
                                          reread_gap, reread_span)
from nested_learning.training.sources import open_source


def write_corpus(folder, n_files=6, paragraphs=8):
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        # Every paragraph names its own document-sized block, so windows can be traced to documents.
        text = "\n\n".join(f"<f{f}p{p}> " + "lorem ipsum dolor " * 40 for p in range(paragraphs))
        (folder / f"file{f}.txt").write_text(text)
    return folder


def markers(window: bytes) -> set[str]:
    import re
    return set(re.findall(r"<f\d+p\d+>", window.decode("utf-8", errors="replace")))


def test_heldout_split_never_overlaps_training(tmp_path):
    corpus = write_corpus(tmp_path / "c")
    source = open_source(str(corpus))
    documents = list(source.documents())
    held = {d.id for d in documents if is_heldout(d.id, 0.3)}
    assert 0 < len(held) < len(documents)
    train_stream = TextStream([source], "train", 0.3, loop=False)
    heldout_stream = TextStream([source], "heldout", 0.3, loop=False)
    train_bytes = b"".join(iter(lambda: train_stream.next_window(100), None))
    heldout_bytes = b"".join(iter(lambda: heldout_stream.next_window(100), None))
    assert markers(train_bytes) and markers(heldout_bytes)
    assert not markers(train_bytes) & markers(heldout_bytes)
    expected_heldout = {m for d in documents if d.id in held for m in markers(d.text.encode())}
    assert markers(heldout_bytes) <= expected_heldout


def test_windows_tile_the_stream_with_one_byte_overlap(tmp_path):
    source = open_source(str(write_corpus(tmp_path / "c", n_files=2)))
    stream = TextStream([source], "train", 0.01, loop=False)
    windows = list(iter(lambda: stream.next_window(64), None))
    assert all(len(w) == 65 for w in windows)
    assert all(a[-1] == b[0] for a, b in zip(windows, windows[1:]))
    joined = windows[0] + b"".join(w[1:] for w in windows[1:])
    documents = [d.text.encode() + b"\n\n" for d in source.documents() if not is_heldout(d.id, 0.01)]
    assert b"".join(documents).startswith(joined)


def test_sources_loop_over_epochs_and_take_turns(tmp_path):
    a = open_source(str(write_corpus(tmp_path / "a", n_files=1, paragraphs=12)))  # 3 documents
    b = open_source(str(write_corpus(tmp_path / "b", n_files=1, paragraphs=1)))  # 1 document
    stream = TextStream([a, b], "train", 0.001, loop=True)
    for _ in range(100):
        stream.next_window(256)
    assert stream.epoch[1] > stream.epoch[0] >= 1  # the smaller source restarted more often


def test_task_fraction_is_exact():
    for fraction in (0.0, 0.25, 1 / 3, 1.0):
        chosen = sum(is_task_sequence(i, fraction) for i in range(1200))
        assert chosen == round(1200 * fraction)


def test_batches_resume_from_their_state_exactly(tmp_path):
    corpus = str(write_corpus(tmp_path / "c"))
    make = lambda: TrainBatches([corpus], 96, 0.1, ["recall", "repeat", "passkey"], 0.25, seed=3)
    straight = make()
    first = [straight.next_batch(4) for _ in range(3)]
    state, buffer = straight.state_dict()
    rest = [straight.next_batch(4) for _ in range(5)]
    resumed = make()
    resumed.load_state_dict(state, buffer)
    for (tokens, weights), (tokens2, weights2) in zip(rest, [resumed.next_batch(4) for _ in range(5)]):
        assert torch.equal(tokens, tokens2) and torch.equal(weights, weights2)
    tokens, weights = first[0]
    assert tokens.shape == weights.shape == (4, 97)
    # Sequence 3 of every 4 is a task sequence: only its answer bytes weigh.
    assert weights[:3].eq(1).all() and 0 < weights[3].sum() < 97


def test_reread_windows_repeat_one_span_of_the_training_text(tmp_path):
    corpus = str(write_corpus(tmp_path / "c"))
    seq_len = 128
    plain = TrainBatches([corpus], seq_len, 0.1, [], 0.0, seed=5)
    reread = TrainBatches([corpus], seq_len, 0.1, [], 0.0, seed=5, reread_fraction=1.0)
    windows = [bytes(plain.next_sequence()[0]) for _ in range(40)]
    text = windows[0] + b"".join(w[1:] for w in windows[1:])  # consecutive windows share one byte
    spans = set()
    for index in range(20):
        tokens, weights = reread.next_sequence()
        window = bytes(tokens)
        span = reread_span(index, 5, seq_len, 1.0)
        assert seq_len // 8 <= span <= seq_len // 2 and len(window) == seq_len + 1
        assert window == (window[:span] * 20)[:seq_len + 1]  # one span, read again and again
        assert window[:span] in text  # real training text, in stream order
        assert weights == [1.0] * (seq_len + 1)  # every byte is scored
        spans.add(span)
    assert len(spans) > 5  # the span length varies from window to window
    # The spans tile the stream like ordinary windows: the text is not skipped or repeated.
    again = TrainBatches([corpus], seq_len, 0.1, [], 0.0, seed=5, reread_fraction=1.0)
    firsts = [bytes(again.next_sequence()[0][:reread_span(i, 5, seq_len, 1.0)]) for i in range(3)]
    assert text.startswith(firsts[0] + firsts[1][1:] + firsts[2][1:])


def test_gapped_reread_windows_put_fresh_training_text_between_the_readings(tmp_path):
    corpus = str(write_corpus(tmp_path / "c"))
    seq_len = 256
    plain = TrainBatches([corpus], seq_len, 0.1, [], 0.0, seed=5)
    text = b"".join(bytes(plain.next_sequence()[0])[1:] for _ in range(60))
    gapped = TrainBatches([corpus], seq_len, 0.1, [], 0.0, seed=5, reread_fraction=1.0, reread_gap=100)
    gaps = set()
    for index in range(20):
        window = bytes(gapped.next_sequence()[0])
        span = reread_span(index, 5, seq_len, 1.0)
        gap = reread_gap(index, 5, seq_len, span, 100)
        assert 0 <= gap <= 100 and len(window) == seq_len + 1
        assert 2 * span + gap <= seq_len + 1  # the second reading fits whole
        passage, between = window[:span], window[span:span + gap]
        assert window[span + gap:2 * span + gap] == passage  # read again after the gap
        if gap > 1:
            assert between != passage[:gap] and between[1:] in text  # other training text, not the passage
        gaps.add(gap)
    assert len(gaps) > 5
    # reread_gap 0 draws no gap, so windows stay back to back (the test above checks those byte for byte).
    assert all(reread_gap(i, 5, seq_len, 64, 0) == 0 for i in range(50))


def test_reread_fraction_picks_that_share_of_text_windows_reproducibly():
    chosen = [reread_span(i, 0, 512, 0.3) > 0 for i in range(2000)]
    assert 0.26 < sum(chosen) / 2000 < 0.34
    assert chosen == [reread_span(i, 0, 512, 0.3) > 0 for i in range(2000)]
    assert chosen != [reread_span(i, 1, 512, 0.3) > 0 for i in range(2000)]  # the seed decides
    assert not any(reread_span(i, 0, 512, 0.0) for i in range(200))


def test_empty_or_all_heldout_data_is_a_clear_error(tmp_path):
    corpus = write_corpus(tmp_path / "c", n_files=1, paragraphs=1)
    batches = TrainBatches([str(corpus)], 64, 0.999999, [], 0.0, seed=0)
    with pytest.raises(ValueError, match="no train documents"):
        batches.next_batch(1)
    (tmp_path / "blank.txt").write_text("\n\n   \n")
    with pytest.raises(ValueError, match="held-out split is empty"):
        heldout_sequences(TrainBatches([str(tmp_path / "blank.txt")], 64, 0.5, [], 0.0, seed=0), 4, 0.5)


def test_balanced_windows_each_weigh_seq_len_and_keep_what_they_score(tmp_path):
    corpus = str(write_corpus(tmp_path / "c"))
    plain = TrainBatches([corpus], 128, 0.1, ["repeat", "passkey"], 0.5, 3)
    balanced = TrainBatches([corpus], 128, 0.1, ["repeat", "passkey"], 0.5, 3, balance_windows=True)
    tokens_p, weights_p = plain.next_batch(8)
    tokens_b, weights_b = balanced.next_batch(8)
    assert torch.equal(tokens_p, tokens_b)  # the same data, only weighted differently
    torch.testing.assert_close(weights_b[:, 1:].sum(dim=1), torch.full((8,), 128.0))
    assert torch.equal(weights_b > 0, weights_p > 0)  # the same bytes are scored
    per_byte = weights_b[:, 1:].max(dim=1).values
    task_rows = weights_p[:, 1:].sum(dim=1) < 128  # a task window scores only its answers
    assert task_rows.any() and (~task_rows).any()
    assert (per_byte[task_rows] > 1).all() and torch.allclose(per_byte[~task_rows], torch.ones(1))
