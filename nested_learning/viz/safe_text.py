"""User text as safe data: escaping for Markdown and Plotly labels, upload decoding, and the run's text
as characters (``byte_spans``, for the coloured text of ``text_map``).

User text is never handed to a renderer that interprets it: Plotly labels escape its tag-like subset
of HTML, and messages that quote user values go through :func:`escape_markdown`.
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

VISIBLE_SPACE = "\u00b7"  # a space drawn as a character (a middle dot), where a blank would look like nothing
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&=\"'])")


def escape_markdown(value: object, limit: int = 40) -> str:
    """A user value quoted inside a Streamlit message (which renders Markdown): shortened, one line,
    every Markdown/HTML special character backslash-escaped."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def plotly_label(text: str) -> str:
    """Plotly renders a subset of HTML in labels and hover text (<b>, <a href>, <br>): escape it."""
    return html.escape(text, quote=False)


def decode_upload(data: bytes) -> tuple[str, list[str]]:
    """Decode an uploaded text file. UTF-8 (with or without BOM); anything else is decoded with U+FFFD
    in place of the bad bytes and a notice counting them, never an exception."""
    notices = []
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
        notices.append(f"The file is not valid UTF-8: {bad} undecodable byte sequence(s) were replaced by \ufffd.")
    if "\x00" in text:
        notices.append("The file contains NUL bytes; they are kept as tokens (shown as \\x00).")
    return text, notices


@dataclass(frozen=True)
class Span:
    """One displayed character (or an undecodable byte) and the tokens (bytes) it covers."""
    label: str  # what to show: the character, or a visible escape for control / invalid bytes
    first: int  # first token index
    last: int  # last token index (inclusive)
    value: float  # the colour value (max over the character's bytes)
    control: bool = False  # shown as an escape, not as itself
    newline: bool = False


def _char_length(lead: int) -> int:
    if lead < 0x80:
        return 1
    for length, (mask, bits) in ((2, (0xE0, 0xC0)), (3, (0xF0, 0xE0)), (4, (0xF8, 0xF0))):
        if lead & mask == bits:
            return length
    return 0  # continuation byte or invalid lead byte


def byte_spans(token_ids: list[int], values) -> list[Span]:
    """Group byte tokens into characters (UTF-8), each with the max of its bytes' values.

    Control characters and undecodable bytes become visible escapes (``\\x07``); a newline stays a
    line break. A recording may start inside a character: its stray bytes show as escapes."""
    values = np.asarray(values, dtype=float)
    spans, i, n = [], 0, len(token_ids)
    while i < n:
        length = _char_length(token_ids[i])
        chunk = bytes(token_ids[i:i + length]) if length else b""
        try:
            char = chunk.decode("utf-8") if length and len(chunk) == length else None
        except UnicodeDecodeError:
            char = None
        if char is None:  # one stray byte
            spans.append(Span(f"\\x{token_ids[i]:02x}", i, i, _peak(values[i:i + 1]), control=True))
            i += 1
            continue
        value = _peak(values[i:i + length])
        if char == "\n":
            spans.append(Span("\u23ce", i, i, value, control=True, newline=True))
        elif char == "\t":
            spans.append(Span("\\t", i, i, value, control=True))
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            spans.append(Span(f"\\u{ord(char):04x}" if ord(char) > 0xFF else f"\\x{ord(char):02x}", i, i + length - 1,
                              value, control=True))
        else:
            spans.append(Span(char, i, i + length - 1, value))
        i += length
    return spans


def _peak(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else float("nan")
