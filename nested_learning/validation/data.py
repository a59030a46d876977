"""Random letter text for the update-cadence stepping (property 1), every row the same length. The
other properties build their rows in targets.py from held-out prose and the task generator.

Seeds are strings ``validation/<experiment>/<seed>/<row>``: the training data is drawn from seeds of
another form (``tasks:<seed>:<index>``), so these sequences are held out by construction, and the
same seed gives the same sequences on any machine (``random.Random`` hashes a str seed with SHA-512).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..training.tasks import LETTERS


def row_seed(experiment: str, seed: int, row: int) -> str:
    return f"validation/{experiment}/{seed}/{row}"


@dataclass
class Batch:
    tokens: torch.Tensor  # [N, T] byte ids
    texts: list[str]


def _batch(texts: list[str]) -> Batch:
    lengths = {len(t) for t in texts}
    if len(lengths) != 1:  # a builder bug, not a user error: batches must be rectangular
        raise AssertionError(f"sequences of one batch differ in length: {sorted(lengths)}")
    return Batch(torch.tensor([list(t.encode("ascii")) for t in texts], dtype=torch.long), texts)


# --- 1. random text for the update-cadence stepping ------------------------------------------------

def random_text(n: int, length: int, seed: int) -> Batch:
    rows = []
    for i in range(n):
        rng = random.Random(row_seed("updates", seed, i))
        rows.append("".join(rng.choice(LETTERS + " ") for _ in range(length)))
    return _batch(rows)
