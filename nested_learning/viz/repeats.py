"""Repeated spans of a run: where the text repeats something it read earlier in the run, and what the
repeat cost against the first reading (the "second time is cheaper" story, without reading heatmaps).

A left-to-right parse like LZ77's: at each word start the longest match with an earlier word start (the
repeat may overlap its source, as in a phrase read several times in a row), cut back to end where a word
ends in both copies; a match of at least ``min_length`` bytes is a repeat and the parse continues after
it. Repeats are whole words and sentences, as people mean them: a shorter or mid-word overlap ("ed the s")
is chance, not a repeat. A match that overlaps its source with a period of at least ``min_length`` is one
repeat per copy, each of the copy before.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..recording import Recording
from ..tokenizer import ByteTokenizer
from .timelines import mean_surprise

MIN_REPEAT = 16  # bytes: shorter word matches ("of the ", "in the") are common phrases, not repeats worth marking
MAX_CANDIDATES = 32  # earlier starts of the same min_length-gram tried per position (the latest ones): bounds the time


@dataclass(frozen=True)
class Repeat:
    start: int  # token index in the run of the repeat
    source: int  # token index of the earlier occurrence it repeats
    length: int


def _is_word(byte: int) -> bool:
    return chr(byte).isalnum() if byte < 128 else True  # bytes of a UTF-8 character belong to a word


def find_repeats(tokens: list[int], min_length: int = MIN_REPEAT) -> list[Repeat]:
    """Non-overlapping repeats, in order, each the longest whole-word match at its start with an earlier start."""
    if min_length < 1:
        raise ValueError("min_length must be >= 1")
    n, repeats, i = len(tokens), [], 0
    word = [_is_word(t) for t in tokens]
    starts_word = [word[k] and (k == 0 or not word[k - 1]) for k in range(n)]

    def inside_word(k: int) -> bool:  # position k splits a word
        return 0 < k < n and word[k - 1] and word[k]

    starts: dict[tuple, list[int]] = {}  # each min_length-gram -> the word starts it starts at, so far

    def remember(position: int):
        if starts_word[position] and position + min_length <= n:
            starts.setdefault(tuple(tokens[position:position + min_length]), []).append(position)

    while i < n:
        best_length, best_source = 0, -1
        for j in reversed(starts.get(tuple(tokens[i:i + min_length]), [])[-MAX_CANDIDATES:] if starts_word[i] else []):
            length = min_length
            while i + length < n and tokens[j + length] == tokens[i + length]:
                length += 1
            while length and (inside_word(i + length) or inside_word(j + length)):  # end where words end
                length -= 1
            if length > best_length:
                best_length, best_source = length, j
        if best_length >= min_length:
            period = i - best_source
            if best_source + best_length > i and period >= min_length:  # overlaps its source: one repeat per copy
                repeats += [Repeat(i + k, i + k - period, min(period, best_length - k)) for k in range(0, best_length, period)
                            if best_length - k >= min_length]
            else:
                repeats.append(Repeat(i, best_source, best_length))
            for position in range(i, i + best_length):
                remember(position)
            i += best_length
        else:
            remember(i)
            i += 1
    return repeats


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def repeat_table(recording: Recording, repeats: list[Repeat], max_rows: int = 50) -> pd.DataFrame:
    """One row per repeat: its text, where it and its source are, and the mean loss (and surprise, with a
    memory) of the source reading and of the repeat. NaN where a run has no such quantity."""
    tokens = recording.tokens.tolist()
    loss = recording.stream("loss").double().numpy()
    surprise = mean_surprise(recording)
    p0 = recording.start_position
    rows = []
    for r in repeats[:max_rows]:
        text = "".join(ByteTokenizer.token_label(t) for t in tokens[r.start:r.start + min(r.length, 32)])
        first, again = slice(r.source, r.source + r.length), slice(r.start, r.start + r.length)
        rows.append({"text": text + ("..." if r.length > 32 else ""), "length": r.length,
                     "first at": r.source + p0, "repeat at": r.start + p0,
                     "loss first": _mean(loss[first]), "loss repeat": _mean(loss[again]),
                     "surprise first": _mean(surprise[first]), "surprise repeat": _mean(surprise[again])})
    return pd.DataFrame(rows, columns=["text", "length", "first at", "repeat at", "loss first", "loss repeat",
                                       "surprise first", "surprise repeat"])
