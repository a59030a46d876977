"""Held-out prose for the memory's measurements: documents no training step saw, as printable ASCII.

The default source is the offline corpus the shipped model was trained on (built on the fly into a
temporary folder; nothing is downloaded), split exactly as training split it: a document is held out
when the hash of its id falls below the checkpoint's ``heldout_fraction``. That split is small (about
44 KB of the 1.9 MB corpus), so measurements draw from it with replacement across rows, never within
one: a row's passage never appears in its own filler.
"""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

from ..training import tasks
from ..training.data import is_heldout
from ..training.sources import open_source

PASSAGE_REGION = 0.4  # passages come from the first 40% of the held-out text, fillers from the rest


def ascii_prose(text: str) -> str:
    """Printable ASCII with single spaces: one byte per character."""
    return " ".join("".join(c if " " <= c <= "~" else " " for c in text).split())


def ascii_as_written(text: str) -> str:
    """Printable ASCII keeping the line breaks (as training reads a document); other bytes become spaces."""
    return "".join(c if " " <= c <= "~" or c == "\n" else " " for c in text).strip()


class HeldoutProse:
    """Held-out documents of ``data`` (text folders or files; default: the offline corpus)."""

    def __init__(self, data: list[str] | None = None, heldout_fraction: float = 0.03, min_bytes: int = 8192):
        if not 0.0 < heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
        self.heldout_fraction = heldout_fraction
        if data:
            self.source, self.documents = ", ".join(data), self._read(data)
        else:
            from ..training.corpus import build_corpus
            with tempfile.TemporaryDirectory() as folder:
                build_corpus(Path(folder))
                self.source, self.documents = "offline corpus (python -m nested_learning.training.corpus)", self._read([folder])
        self.text = " ".join(self.documents)
        if len(self.text) < min_bytes:
            raise ValueError(f"only {len(self.text):,} bytes of held-out prose in {self.source}; need {min_bytes:,}")
        cut = self.text.find(" ", int(len(self.text) * PASSAGE_REGION)) + 1
        self._passage_text, self.filler = self.text[:cut], tasks.Filler(self.text[cut:])

    def _read(self, data: list[str]) -> list[str]:
        documents, self.documents_as_written = [], []
        for spec in data:
            for document in open_source(spec).documents():
                if is_heldout(document.id, self.heldout_fraction):
                    text = ascii_prose(document.text)
                    if text:
                        documents.append(text)
                        self.documents_as_written.append(ascii_as_written(document.text))
        return documents

    def passages(self, n: int, length: int, seed: int | str) -> list[str]:
        """``n`` passages of ``length`` bytes from the passage region (distinct while it holds them)."""
        starts = list(range(0, len(self._passage_text) - length, length))
        if not starts:
            raise ValueError(f"held-out passages of {length} bytes do not fit in {len(self._passage_text)} bytes")
        rng = random.Random(f"prose/passages/{seed}")
        rng.shuffle(starts)
        return [self._passage_text[starts[i % len(starts)]:starts[i % len(starts)] + length] for i in range(n)]

    def fillers(self, n: int, length: int, seed: int | str) -> list[str]:
        """``n`` slices of ``length`` bytes of filler prose (never the passage region)."""
        rng = random.Random(f"prose/fillers/{seed}")
        return [self.filler(rng, length) for _ in range(n)]

    def windows(self, n: int, length: int, seed: int | str, as_written: bool = False) -> list[str]:
        """``n`` windows of ``length`` bytes, each the held-out documents in its own seeded order (no
        document twice within a window while the split holds ``length`` bytes). ``as_written``: with their
        line breaks, documents a blank line apart (else on one line, single-spaced)."""
        out, documents, join = [], self.documents_as_written if as_written else self.documents, "\n\n" if as_written else " "
        for i in range(n):
            order = list(documents)
            random.Random(f"prose/windows/{seed}/{i}").shuffle(order)
            text = join.join(order)
            while len(text) < length:
                text += join + text
            out.append(text[:length])
        return out
