"""Evaluation sequences with exact labels, built so that every row of a batch has the same length.

Seeds are strings ``validation/<experiment>/<seed>/<row>``: the training data is drawn from seeds of
another form (``tasks:<seed>:<index>``), so these sequences are held out by construction, and the
same seed gives the same sequences on any machine (``random.Random`` hashes a str seed with SHA-512).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .. import tasks
from ..tasks import DIGITS, DISTRACTORS, LETTERS


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


def position_mask(length: int, positions) -> torch.Tensor:
    mask = torch.zeros(length, dtype=torch.bool)
    mask[list(positions)] = True
    return mask


# --- 1. random text for the update-cadence stepping ------------------------------------------------

def random_text(n: int, length: int, seed: int) -> Batch:
    rows = []
    for i in range(n):
        rng = random.Random(row_seed("updates", seed, i))
        rows.append("".join(rng.choice(LETTERS + " ") for _ in range(length)))
    return _batch(rows)


# --- 2. repetitions of a random string -----------------------------------------------------------

def repetitions(n: int, length: int, repeats: int, seed: int) -> tuple[Batch, list[torch.Tensor]]:
    """The training task ``repeat: s | s`` with more copies of the random letter string s; one position
    mask per copy. Letters are uniform, so the first copy is unpredictable (about ln 26 = 3.26 nats a
    byte at best) and only the context helps later."""
    samples = [tasks.repeated_string(random.Random(row_seed("repetition", seed, i)), length, repeats=repeats)
               for i in range(n)]
    batch = _batch([s.text for s in samples])
    T, copies = batch.tokens.shape[1], samples[0].answer_positions  # every row has the same layout
    first = copies[0] - len(" | ") - length  # the string itself sits right before the first " | "
    starts = [first] + [copies[r * length] for r in range(repeats - 1)]
    return batch, [position_mask(T, range(a, a + length)) for a in starts]


# --- 3. multi-query associative recall ------------------------------------------------------------

def recall(n: int, n_pairs: int, seed: int) -> tuple[Batch, torch.Tensor, int]:
    """The shared recall task (letter keys, digit values; queries after ``;``).

    Returns the batch, the answer mask [T] (value digits in the query part) and the index of the first
    query token (the batch can be cut there: pairs in one call, queries in the next)."""
    samples = [tasks.associative_recall(random.Random(row_seed(f"recall{n_pairs}", seed, i)), n_pairs=n_pairs)
               for i in range(n)]
    batch = _batch([s.text for s in samples])
    positions = {s.answer_positions for s in samples}
    if len(positions) != 1:
        raise AssertionError("recall answers sit at different positions within one batch")
    split = samples[0].text.index(";") + 1
    return batch, position_mask(batch.tokens.shape[1], samples[0].answer_positions), split


# --- 4. held-out mixture of the training tasks -----------------------------------------------------

def heldout_tasks(n: int, length: int, seed: int) -> tuple[Batch, torch.Tensor]:
    """Whole samples of the three tasks packed into ``length`` bytes; mask [N, T] of answer bytes."""
    rows, masks = [], []
    for i in range(n):
        tokens, weights = tasks.pack_tasks(row_seed("heldout", seed, i), length)
        rows.append(bytes(tokens).decode("ascii"))
        masks.append(torch.tensor(weights) > 0)
    return _batch(rows), torch.stack(masks)


# --- 5. a fact, distractors, the question -----------------------------------------------------------

FACT_HEAD, FACT_TAIL = "passkey: " + tasks.PASSKEY_FACT_HEAD, tasks.PASSKEY_FACT_TAIL  # the training task's wording
QUESTION = tasks.PASSKEY_QUESTION
KEY_DIGITS = 5


@dataclass
class PasskeyBatch:
    batch: Batch
    answer_mask: torch.Tensor  # [T] the key's digits in the answer
    key_positions: range  # where the key is stated
    question_start: int  # first token of the question: the last call of the multi-call run starts here
    fact_end: int  # first token after the fact sentence

    def gap(self) -> int:
        """Tokens between the stated key's last digit and the first answer digit's prediction point."""
        first_answer = int(self.answer_mask.nonzero()[0])
        return (first_answer - 1) - self.key_positions[-1]


def filler(rng: random.Random, length: int) -> str:
    """Exactly ``length`` bytes of the distractor sentences the passkey task uses, in random order."""
    text = ""
    while len(text) < length:
        text += rng.choice(DISTRACTORS)
    return text[:length]


def passkey(n: int, distractor_tokens: int, seed: int) -> PasskeyBatch:
    rows = []
    for i in range(n):
        rng = random.Random(row_seed(f"passkey{distractor_tokens}", seed, i))
        key = "".join(rng.choice(DIGITS) for _ in range(KEY_DIGITS))
        rows.append(FACT_HEAD + key + FACT_TAIL + filler(rng, distractor_tokens) + QUESTION + key + ".\n")
    batch = _batch(rows)
    question_start = len(FACT_HEAD) + KEY_DIGITS + len(FACT_TAIL) + distractor_tokens
    answer_start = question_start + len(QUESTION)
    return PasskeyBatch(batch, position_mask(batch.tokens.shape[1], range(answer_start, answer_start + KEY_DIGITS)),
                        range(len(FACT_HEAD), len(FACT_HEAD) + KEY_DIGITS), question_start,
                        len(FACT_HEAD) + KEY_DIGITS + len(FACT_TAIL))
