"""Training and held-out data: byte tokens, documents packed into fixed-length sequences.

* Split: a document is held out when a hash of its id falls below ``heldout_fraction``. The split
  depends on nothing else (not the seed, not the order), so held-out text never enters training.
* Packing: documents (each followed by a blank line) are concatenated into one byte stream per
  split and cut into windows of ``seq_len + 1`` bytes with stride ``seq_len`` (inputs are
  ``window[:-1]``, targets ``window[1:]``; no target is lost between windows). Several sources take
  turns document by document; each restarts from its beginning (next epoch) when exhausted.
* Synthetic tasks: sequence number i of the run is a task sequence when ``floor((i + 1) f) >
  floor(i f)`` for task fraction f, so exactly that fraction is tasks, reproducibly; its content
  comes from a generator seeded with (seed, i). Task sequences weight only their answer bytes. Their
  wordings: the original one, or (``phrasings="trained"``) each sample's drawn from the trained
  templates of phrasings.py; the held-out templates are never drawn.
* Reread windows: a share ``reread_fraction`` of the text windows (chosen by a hash of (seed, i))
  is a span of training text read again and again until the window is full; the span length is
  drawn from [seq_len / 8, seq_len / 2]. Every byte is scored: after the first reading the next
  byte is in the context, so these windows give in-context copying a dense signal on real prose
  (the skill the memory tasks and the validation's repetition test need). With ``reread_gap`` > 0
  each reading is followed by fresh text of one length drawn from [0, reread_gap] (at most what lets
  the second reading fit): the passage must then cross other prose in the memory, as in the
  measured reread target, instead of following itself.
* Balanced windows (``balance_windows``): each window's weights are scaled to sum to ``seq_len``, so
  the loss is the mean over windows of each window's mean loss. Without it a task window (a few
  dozen scored answers) weighs a tenth of a prose window (every byte scored), and skills learned on
  the tasks are forgotten once prose joins the mixture.
* Every rank of a distributed run builds the same global batch and keeps its own rows, so the
  batch does not depend on the number of processes and resume is exact at any scale.
"""
from __future__ import annotations

import hashlib
import math
import random

import torch

from . import tasks as synthetic
from .sources import open_source

SEPARATOR = b"\n\n"


def is_heldout(document_id: str, fraction: float) -> bool:
    digest = hashlib.blake2b(document_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64 < fraction


class TextStream:
    """Documents of one split from several sources, in turns, as a byte stream cut into windows."""

    def __init__(self, sources: list, split: str, heldout_fraction: float, loop: bool = True):
        self.sources, self.split, self.fraction, self.loop = sources, split, heldout_fraction, loop
        self.next_index = [0] * len(sources)  # raw document index to read next, per source
        self.epoch = [0] * len(sources)
        self.turn = 0
        self.buffer = b""
        self._iterators = [None] * len(sources)
        self._exhausted = [False] * len(sources)

    def _wanted(self, document) -> bool:
        return bool(document.text.strip()) and is_heldout(document.id, self.fraction) == (self.split == "heldout")

    def _next_document(self, k: int) -> bytes | None:
        """The next document of this split from source k, or None when source k has no more."""
        restarted = False
        while True:
            if self._iterators[k] is None:
                self._iterators[k] = iter(self.sources[k].documents(self.next_index[k]))
            for document in self._iterators[k]:
                self.next_index[k] += 1
                if self._wanted(document):
                    return document.text.strip().encode("utf-8", errors="replace") + SEPARATOR
            if not self.loop or restarted:  # restarted: a whole pass found no document of this split
                return None
            self.next_index[k], self.epoch[k], self._iterators[k], restarted = 0, self.epoch[k] + 1, None, True

    def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            live = [k for k in range(len(self.sources)) if not self._exhausted[k]]
            if not live:
                return False
            k = live[self.turn % len(live)]
            self.turn += 1
            document = self._next_document(k)
            if document is None:
                self._exhausted[k] = True
                if self.loop:
                    raise ValueError(f"{self.sources[k].name}: no {self.split} documents (non-empty text) in the data")
            else:
                self.buffer += document
        return True

    def next_window(self, seq_len: int) -> bytes | None:
        if not self._fill(seq_len + 1):
            return None
        window, self.buffer = self.buffer[:seq_len + 1], self.buffer[seq_len:]
        return window

    def state_dict(self) -> tuple[dict, bytes]:
        return {"next_index": list(self.next_index), "epoch": list(self.epoch), "turn": self.turn}, self.buffer

    def load_state_dict(self, state: dict, buffer: bytes):
        if len(state["next_index"]) != len(self.sources):
            raise ValueError(f"the saved run read {len(state['next_index'])} data sources, this one {len(self.sources)}")
        self.next_index, self.epoch, self.turn = list(state["next_index"]), list(state["epoch"]), int(state["turn"])
        self.buffer, self._iterators = bytes(buffer), [None] * len(self.sources)


def is_task_sequence(index: int, task_fraction: float) -> bool:
    return math.floor((index + 1) * task_fraction) > math.floor(index * task_fraction)


def reread_span(index: int, seed: int, seq_len: int, reread_fraction: float) -> int:
    """The span length of text window ``index`` when it is a reread window, else 0."""
    if reread_fraction <= 0.0:
        return 0
    rng = random.Random(f"reread:{seed}:{index}")
    if rng.random() >= reread_fraction:
        return 0
    return rng.randint(max(1, seq_len // 8), max(1, seq_len // 2))


def reread_gap(index: int, seed: int, seq_len: int, span: int, max_gap: int) -> int:
    """Bytes of other text after each reading in reread window ``index`` (0: readings back to back)."""
    if max_gap <= 0:
        return 0
    room = max(0, seq_len + 1 - 2 * span)  # the second reading must fit whole
    return min(random.Random(f"reread-gap:{seed}:{index}").randint(0, max_gap), room)


def reread_window(span: bytes, size: int, gaps=None) -> bytes:
    """``span`` repeated until ``size`` bytes, each reading followed by the next of ``gaps`` (a callable
    giving the text between readings) when given."""
    if gaps is None:
        return (span * (size // len(span) + 1))[:size]
    window = b""
    while len(window) < size:
        window += span + gaps()
    return window[:size]


FILLER_POOL_BYTES = 1 << 18  # prose the tasks cut their filler from: the first 256 KB of the split


def filler_from(sources: list, split: str, heldout_fraction: float) -> synthetic.Filler:
    """Task filler cut from a split's prose (the first FILLER_POOL_BYTES of it), or distractor
    sentences when there is no text: the tasks' gaps then look like the text the model reads."""
    if not sources:
        return synthetic.SENTENCES
    stream = TextStream(sources, split, heldout_fraction, loop=False)
    pool = stream.next_window(FILLER_POOL_BYTES) or stream.buffer
    try:
        return synthetic.Filler(pool.decode("utf-8", errors="replace"))
    except ValueError:  # too little ASCII prose in the split
        return synthetic.SENTENCES


class TrainBatches:
    """Global batches of [batch_size, seq_len + 1] tokens and weights, in a reproducible order."""

    def __init__(self, data: list[str], seq_len: int, heldout_fraction: float, tasks: list[str],
                 task_fraction: float, seed: int, reread_fraction: float = 0.0, task_options: dict | None = None,
                 balance_windows: bool = False, reread_gap: int = 0, phrasings: str = "original"):
        self.balance_windows, self.reread_gap, self.phrasings = balance_windows, reread_gap, phrasings
        self.sources = [open_source(spec) for spec in data]
        self.seq_len, self.tasks, self.task_fraction, self.seed = seq_len, tasks, task_fraction, seed
        self.reread_fraction = reread_fraction
        self.task_options = synthetic.check_task_options(task_options)
        self.filler = filler_from(self.sources, "train", heldout_fraction) if self.task_options else synthetic.SENTENCES
        self.text = TextStream(self.sources, "train", heldout_fraction) if self.sources else None
        self.sequence = 0  # sequences handed out so far: the position of the run in its data

    def next_sequence(self) -> tuple[list[int], list[float]]:
        index, self.sequence = self.sequence, self.sequence + 1
        if self.text is None or (self.tasks and is_task_sequence(index, self.task_fraction)):
            return synthetic.pack_tasks(f"tasks:{self.seed}:{index}", self.seq_len + 1, self.tasks,
                                        self.task_options or None, self.filler, self.phrasings)
        span = reread_span(index, self.seed, self.seq_len, self.reread_fraction)
        if not span:
            window = self.text.next_window(self.seq_len)
        else:
            passage = self.text.next_window(span - 1)
            gap = reread_gap(index, self.seed, self.seq_len, span, self.reread_gap)
            window = reread_window(passage, self.seq_len + 1, (lambda: self.text.next_window(gap - 1)) if gap else None)
        return list(window), [1.0] * len(window)

    def next_batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.next_sequence() for _ in range(batch_size)]
        tokens = torch.tensor([r[0] for r in rows], dtype=torch.long)
        weights = torch.tensor([r[1] for r in rows], dtype=torch.float32)
        if self.balance_windows:  # weights[:, 0] scores nothing (no target): balance the rest
            scored = weights[:, 1:].sum(dim=1, keepdim=True)
            weights = torch.where(scored > 0, weights * self.seq_len / scored.clamp_min(1e-12), weights)
        return tokens, weights

    def state_dict(self) -> tuple[dict, bytes]:
        text_state, buffer = self.text.state_dict() if self.text else ({}, b"")
        return {"sequence": self.sequence, "text": text_state}, buffer

    def load_state_dict(self, state: dict, buffer: bytes):
        self.sequence = int(state["sequence"])
        if self.text is not None:
            self.text.load_state_dict(state["text"], buffer)


def heldout_sequences(batches: TrainBatches, count: int, heldout_fraction: float) -> torch.Tensor:
    """The first ``count`` held-out windows [N, seq_len + 1] (fewer when the split is small)."""
    stream = TextStream(batches.sources, "heldout", heldout_fraction, loop=False)
    windows = []
    while len(windows) < count:
        window = stream.next_window(batches.seq_len)
        if window is None:
            break
        windows.append(list(window))
    if not windows:
        raise ValueError(f"the held-out split is empty: fewer than {batches.seq_len + 1} bytes of held-out text; "
                         "add data, raise --heldout-fraction or lower --seq-len")
    return torch.tensor(windows, dtype=torch.long)
