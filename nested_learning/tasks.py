"""Synthetic memory tasks with exact labels, as ASCII byte sequences.

Each generator returns a :class:`TaskSample`: the text (ASCII, so character i is byte i) and the
positions of its answer bytes. An answer byte is fully determined by the bytes before it and the
task's rules, so a model that has memorised the context predicts it with certainty:

    recall   multi-query associative recall: ``recall: qa=41 wz=07 ; wz=07 qa=41``; answers are the
             values in the query part (after ``;``), each recalled from its key
    repeat   a random string and its copy: ``repeat: xkfe | xkfe``; answers are the copy's bytes
    passkey  a 5-digit pass key stated once, then distractor sentences, then the question;
             answers are the key's digits in the final answer

Everything is seeded (an int, a str or a ``random.Random``), so a sample is reproducible anywhere.
:func:`pack_tasks` fills an exact number of bytes with whole samples (training sequences);
``weights`` mark the answer bytes.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

LETTERS = "abcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
# The distractor of the passkey test in the Landmark Attention paper (Mohtashami & Jaggi, 2023).
DISTRACTORS = ("The grass is green. ", "The sky is blue. ", "The sun is yellow. ", "Here we go. ",
               "There and back again. ")


@dataclass(frozen=True)
class TaskSample:
    task: str
    text: str  # ASCII only: byte i is character i
    answer_positions: tuple[int, ...]  # byte indices whose value follows exactly from the bytes before

    @property
    def tokens(self) -> list[int]:
        return list(self.text.encode("ascii"))

    @property
    def answers(self) -> str:
        return "".join(self.text[p] for p in self.answer_positions)

    def weights(self) -> list[float]:
        """1.0 at answer bytes, 0.0 elsewhere: a loss mask over ``tokens``."""
        out = [0.0] * len(self.text)
        for p in self.answer_positions:
            out[p] = 1.0
        return out

    def __len__(self) -> int:
        return len(self.text)


def _rng(seed) -> random.Random:
    return seed if isinstance(seed, random.Random) else random.Random(seed)


def _check(name: str, value: int, low: int):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def associative_recall(seed=0, n_pairs: int = 8, key_length: int = 2, value_length: int = 2,
                       n_queries: int | None = None) -> TaskSample:
    """Key-value pairs (distinct letter keys, digit values), then queries of those keys in random order."""
    _check("n_pairs", n_pairs, 1)
    _check("key_length", key_length, 1)
    _check("value_length", value_length, 1)
    n_queries = n_pairs if n_queries is None else n_queries
    _check("n_queries", n_queries, 1)
    if n_pairs > len(LETTERS) ** key_length:
        raise ValueError(f"{n_pairs} distinct keys do not exist with key_length {key_length}")
    rng = _rng(seed)
    keys = ["".join(rng.choice(LETTERS) for _ in range(key_length))]
    while len(keys) < n_pairs:  # rejection sampling: cheap, keys are sparse in the key space
        key = "".join(rng.choice(LETTERS) for _ in range(key_length))
        if key not in keys:
            keys.append(key)
    values = ["".join(rng.choice(DIGITS) for _ in range(value_length)) for _ in keys]
    queries = [rng.randrange(n_pairs) for _ in range(n_queries)] if n_queries > n_pairs else rng.sample(range(n_pairs), n_queries)
    text, answers = "recall:" + "".join(f" {k}={v}" for k, v in zip(keys, values)) + " ;", []
    for i in queries:
        text += f" {keys[i]}="
        answers.extend(range(len(text), len(text) + value_length))
        text += values[i]
    return TaskSample("recall", text + "\n", tuple(answers))


def repeated_string(seed=0, length: int = 32, alphabet: str = LETTERS, repeats: int = 2) -> TaskSample:
    """A random string, then ``repeats - 1`` copies of it, separated by `` | ``."""
    _check("length", length, 1)
    _check("repeats", repeats, 2)
    if not alphabet or not alphabet.isascii() or any(c in alphabet for c in "|\n"):
        raise ValueError("alphabet must be non-empty ASCII without '|' or newline")
    rng = _rng(seed)
    s = "".join(rng.choice(alphabet) for _ in range(length))
    text, answers = f"repeat: {s}", []
    for _ in range(repeats - 1):
        text += " | "
        answers.extend(range(len(text), len(text) + length))
        text += s
    return TaskSample("repeat", text + "\n", tuple(answers))


# The passkey sentences (the validation suite builds its persistence test from the same ones).
PASSKEY_FACT_HEAD, PASSKEY_FACT_TAIL = "The pass key is ", ". Remember it. "
PASSKEY_QUESTION = "What is the pass key? The pass key is "


def passkey(seed=0, n_distractors: int = 12, digits: int = 5) -> TaskSample:
    """A pass key hidden at a random depth among distractor sentences, then asked for."""
    _check("n_distractors", n_distractors, 0)
    _check("digits", digits, 1)
    rng = _rng(seed)
    key = "".join(rng.choice(DIGITS) for _ in range(digits))
    sentences = [DISTRACTORS[i % len(DISTRACTORS)] for i in range(n_distractors)]
    sentences.insert(rng.randint(0, n_distractors), PASSKEY_FACT_HEAD + key + PASSKEY_FACT_TAIL)
    head = "passkey: " + "".join(sentences) + PASSKEY_QUESTION
    return TaskSample("passkey", head + key + ".\n", tuple(range(len(head), len(head) + digits)))


TASKS = {"recall": associative_recall, "repeat": repeated_string, "passkey": passkey}

# Sizes drawn for training samples: (parameter, low, high), shrunk when the room left is smaller.
TRAINING_SIZES = {"recall": ("n_pairs", 2, 16), "repeat": ("length", 8, 64), "passkey": ("n_distractors", 0, 24)}


def make_sample(task: str, seed=0, **params) -> TaskSample:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    return TASKS[task](seed, **params)


def parse_task_names(names: str | list[str] | None) -> list[str]:
    """``"recall,repeat"`` -> ["recall", "repeat"]; unknown names raise ValueError."""
    if names is None:
        return list(TASKS)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    for name in names:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
    return list(dict.fromkeys(names))


def _sample_that_fits(task: str, rng: random.Random, room: int) -> TaskSample | None:
    name, low, high = TRAINING_SIZES[task]
    size = rng.randint(low, high)
    seed = rng.getrandbits(64)
    while size >= low:  # shrink until it fits; each size gives the same seed, so samples stay reproducible
        sample = make_sample(task, seed, **{name: size})
        if len(sample) <= room:
            return sample
        size = min(size - 1, size * room // len(sample))
    return None


def pack_tasks(seed, length: int, tasks: list[str] | None = None) -> tuple[list[int], list[float]]:
    """Exactly ``length`` bytes of whole task samples (tasks drawn at random) and their answer weights.

    The tail that no sample fits is distractor text with weight 0."""
    _check("length", length, 1)
    tasks = parse_task_names(tasks)
    if not tasks:
        raise ValueError("pack_tasks needs at least one task")
    rng = _rng(seed)
    tokens, weights = [], []
    while len(tokens) < length:
        sample = None
        for task in [rng.choice(tasks)] + tasks:  # a random task first, then any that still fits
            sample = _sample_that_fits(task, rng, length - len(tokens))
            if sample is not None:
                break
        if sample is None:
            break
        tokens += sample.tokens
        weights += sample.weights()
    filler = "".join(DISTRACTORS).encode("ascii")
    while len(tokens) < length:
        tokens += filler[:length - len(tokens)]
    weights += [0.0] * (length - len(weights))
    return tokens, weights
