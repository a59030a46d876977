"""The clickable text figure: word wrapping, colours and clicks."""
import numpy as np

from nested_learning.viz import text_map
from nested_learning.viz.safe_text import byte_spans


def spans_of(text: str, values=None):
    ids = list(text.encode())
    return byte_spans(ids, np.arange(len(ids), dtype=float) if values is None else values)


def test_lines_wrap_between_words_and_break_at_newlines():
    text = "the cat sat on the mat.\nwords never break across lines unless one is longer than a line: " + "x" * 25
    spans = spans_of(text)
    lines = text_map.wrap(spans, width=20)
    assert [i for line in lines for i in line] == list(range(len(spans)))  # every character once, in order
    shown = ["".join(spans[i].label for i in line) for line in lines]
    assert shown[:2] == ["the cat sat on the ", "mat.\u23ce"]  # "mat." would cross the width: next line
    assert all(len(line) <= 20 for line in lines)
    words = text.replace("\n", " ").split(" ")
    for word in words:
        if 0 < len(word) <= 20:  # a word that fits a line is on one line
            assert any(word in line for line in shown), word
    assert any(line.endswith("\u23ce") for line in shown)  # the newline ends its line
    assert "x" * 20 in shown  # a word longer than a line is cut at the width


def test_colours_are_the_values():
    spans = spans_of("héllo world", values=np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], dtype=float))
    fig = text_map.text_figure(spans, "surprise", start_position=100)
    cells, text = fig.data
    assert list(text.text[:3]) == ["h", "é", "l"] and text.text[5] == "\u00b7"  # a space shows as a dot
    np.testing.assert_allclose(np.asarray(cells.z)[0, :3], [0, 2, 3])  # é covers tokens 1-2: its max
    assert cells.colorbar.title.text == "surprise"
    assert text.customdata[1][0] == "tokens 101-102"
    blank = text_map.text_figure(spans_of("ab", values=np.array([1.0, np.nan])), "loss").data[0]
    assert np.isnan(np.asarray(blank.z)[0, 1])  # no value (the last token's loss): no colour


def test_a_click_gives_the_first_token_of_the_character():
    spans = spans_of("aé b")
    event = {"selection": {"points": [{"point_index": 1, "x": 1, "y": 0}]}}
    assert text_map.clicked_token(event, spans) == 1
    assert text_map.clicked_token({"selection": {"points": [{"point_index": 3}]}}, spans) == 4
    assert text_map.clicked_token(None, spans) is None
    assert text_map.clicked_token({"selection": {"points": [{"point_index": 99}]}}, spans) is None
    cell = {"selection": {"points": [{"curve_number": 0, "x": 3, "y": 0}]}}  # a click on the cell behind "b"
    assert text_map.clicked_token(cell, spans) == 4
