"""User text stays data: escaping, the surprise-coloured text, upload decoding."""
import numpy as np

from nested_learning.viz.safe_text import byte_spans, decode_upload, escape_markdown, plotly_label
from nested_learning.viz.text_map import text_figure

HOSTILE = '<script>alert(1)</script> **x** _y_ [a](javascript:alert(1)) <img src=x onerror=alert(1)> & "q"'


def _ids(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def test_colored_text_keeps_hostile_text_as_text():
    ids = _ids(HOSTILE)
    trace = text_figure(byte_spans(ids, np.linspace(0, 1, len(ids))), "surprise").data[1]
    shown = "".join(" " if label == "\u00b7" else label for label in trace.text)
    assert shown == plotly_label(HOSTILE)  # every character shown as itself, Plotly's HTML subset escaped
    assert "<" not in shown


def test_spans_group_utf8_and_make_controls_visible():
    text = "a\U0001F600\x07\n\tb"
    ids = _ids(text)
    values = np.arange(len(ids), dtype=float)
    spans = byte_spans(ids, values)
    assert [s.label for s in spans] == ["a", "\U0001F600", "\\x07", "\u23ce", "\\t", "b"]
    emoji = spans[1]
    assert (emoji.first, emoji.last, emoji.value) == (1, 4, 4.0)  # four bytes, max of their values
    assert [s.control for s in spans] == [False, False, True, True, True, False]
    assert spans[3].newline


def test_stray_bytes_become_escapes():
    # A recording can start inside a character (a continuation byte) or hold invalid bytes.
    spans = byte_spans([0x98, 0x80, ord("a"), 0xFF], [1.0, 2.0, 3.0, float("nan")])
    assert [s.label for s in spans] == ["\\x98", "\\x80", "a", "\\xff"]
    assert np.isnan(spans[3].value)
    assert np.isnan(np.asarray(text_figure(spans, "loss").data[0].z)[0, 3])  # no value, no colour


def test_escape_markdown():
    out = escape_markdown("**x** <b>[l](u)</b>")
    assert "**" not in out and "<b>" not in out and "](" not in out
    assert out.replace("\\", "") == "**x** <b>[l](u)</b>"
    assert escape_markdown("a" * 100, limit=10) == "a" * 10 + "\\.\\.\\."
    assert escape_markdown("line\nbreak") == "line?break"


def test_plotly_label_escapes_its_html_subset():
    assert plotly_label("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"


def test_decode_upload():
    assert decode_upload("héllo".encode()) == ("héllo", [])
    assert decode_upload(b"\xef\xbb\xbfbom") == ("bom", [])
    text, notices = decode_upload(b"ok \xff\xfe end \xef\xbf\xbd")  # two bad bytes, one real U+FFFD
    assert text.startswith("ok ") and text.endswith(" end \ufffd")
    assert len(notices) == 1 and "2 undecodable" in notices[0]
    text, notices = decode_upload(b"a\x00b")
    assert text == "a\x00b" and "NUL" in notices[0]
