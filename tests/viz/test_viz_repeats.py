"""Repeated spans of a run: found by a left-to-right longest-match parse, tabulated with their costs."""
import math

import pytest

from nested_learning.recording import record
from nested_learning.viz import timelines
from nested_learning.viz.repeats import MIN_REPEAT, Repeat, find_repeats, repeat_table


def test_a_repeated_sentence_is_one_repeat_of_its_first_reading():
    text = b"Alice met Bob at noon. Then it rained. Alice met Bob at noon."
    assert find_repeats(list(text)) == [Repeat(39, 0, 22)]


def test_repeats_are_whole_words_of_at_least_min_repeat_bytes_not_chance_overlaps():
    text = b"She walked the shore and the dog followed. He sailed the sea, rested the sail and waited. "
    assert find_repeats(list(text)) == []  # "ed the s", "and the": chance overlaps inside and across words
    again = text + b"Later she walked the shore alone."
    assert [again[r.start:r.start + r.length] for r in find_repeats(list(again))] == [b"walked the shore "]
    assert MIN_REPEAT >= 16


def test_a_phrase_read_several_times_is_one_repeat_per_copy():
    phrase = b"the cat sat on the mat. "
    found = find_repeats(list(phrase * 4))
    assert found == [Repeat(24 * k, 24 * (k - 1), 24) for k in (1, 2, 3)]


@pytest.mark.parametrize("text", [b"x" * 300, b"abababababab", b"short", b"", bytes(range(256))])
def test_repeats_are_true_copies_in_order_and_never_overlap(text):
    found = find_repeats(list(text))
    for r in found:
        assert r.length >= MIN_REPEAT and r.source < r.start
        assert text[r.start:r.start + r.length] == text[r.source:r.source + r.length]
    for before, after in zip(found, found[1:]):
        assert before.start + before.length <= after.start
    if text == b"x" * 300:  # one long word: nothing in it was read before as a word
        assert found == []
    if len(set(text)) == len(text):
        assert found == []


def test_the_table_holds_each_readings_mean_loss_and_surprise(model):
    rec, _ = record(model, "the cat sat on the mat. " * 3)
    found = find_repeats(rec.tokens.tolist())
    table = repeat_table(rec, found)
    assert list(table["repeat at"]) == [24, 48] and list(table["first at"]) == [0, 24]
    loss = rec.stream("loss").double()
    assert table.loc[0, "loss first"] == pytest.approx(float(loss[:24].mean()))
    assert table.loc[1, "loss repeat"] == pytest.approx(float(loss[48:71].mean()))  # the last token has no loss
    assert math.isfinite(table.loc[0, "surprise repeat"])
    figure = timelines.timeline_figure(rec, None, found)
    assert [(s.x0, s.x1) for s in figure.layout.shapes][:2] == [(-0.5, 23.5), (23.5, 47.5)]
