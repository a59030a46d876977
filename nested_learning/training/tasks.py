"""Synthetic memory tasks with exact labels, as ASCII byte sequences.

Each generator returns a :class:`TaskSample`: the text (ASCII, so character i is byte i) and the
positions of its answer bytes. An answer byte is fully determined by the bytes before it and the
task's rules, so a model that has memorised the context predicts it with certainty:

    recall   multi-query associative recall: ``recall: qa=41 wz=07 ; wz=07 qa=41``; answers are the
             values in the query part (after ``;``), each recalled from its key
    repeat   a random string and its copy: ``repeat: xkfe | xkfe``; answers are the copy's bytes
    passkey  a 5-digit pass key stated once, then distractor sentences, then the question;
             answers are the key's digits in the final answer

Each can spread its parts apart with filler text (``gap``, ``spread``, ``filler_bytes``): filler
comes from a :class:`Filler` (random distractor sentences, or slices of a text pool such as training
prose), so the model must carry what it read beyond its attention window.

Each takes a ``wording`` (phrasings.py): the prefixes, separators and question forms around the
task's content; the default is the original wording. :func:`pack_tasks` draws one per sample from a
set of wordings when given (training with many wordings; the held-out ones are never drawn there).

Everything is seeded (an int, a str or a ``random.Random``), so a sample is reproducible anywhere.
:func:`pack_tasks` fills an exact number of bytes with whole samples (training sequences);
``weights`` mark the answer bytes; ``options`` set each task's size ranges and mixture weight.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from ..phrasings import ORIGINAL, TRAINING_CHOICES as TRAINING_PHRASINGS, CopyWording, PasskeyWording, RecallWording, wordings

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


class Filler:
    """Filler text between the parts of a task: ASCII, no ``|`` or newline (the tasks' separators).

    Without a pool: distractor sentences in random order. With a pool (e.g. training prose): a slice
    at a random offset, cut to start after a space."""

    def __init__(self, pool: str | None = None):
        if pool is not None:
            pool = "".join(c if " " <= c <= "~" and c != "|" else " " for c in pool)
            pool = " ".join(pool.split())
            if len(pool) < 64:
                raise ValueError("a filler pool needs at least 64 characters of ASCII text")
        self.pool = pool

    def __call__(self, rng: random.Random, size: int) -> str:
        if size <= 0:
            return ""
        if self.pool is None:
            text = ""
            while len(text) < size:
                text += rng.choice(DISTRACTORS)
            return text[:size]
        start = rng.randrange(len(self.pool))
        start = self.pool.find(" ", start) + 1  # 0 when no space follows: the pool's start
        text = self.pool[start:start + size]
        while len(text) < size:  # wrap around
            text += " " + self.pool[:size - len(text) - 1]
        return text[:size]


SENTENCES = Filler()


def associative_recall(seed=0, n_pairs: int = 8, key_length: int = 2, value_length: int = 2,
                       n_queries: int | None = None, spread: int = 0, filler: Filler = SENTENCES,
                       wording: RecallWording = ORIGINAL["recall"]) -> TaskSample:
    """Key-value pairs (distinct letter keys, digit values), then queries of those keys in random order.

    ``spread``: bytes of filler after each pair, so the pairs lie that far apart."""
    _check("n_pairs", n_pairs, 1)
    _check("key_length", key_length, 1)
    _check("value_length", value_length, 1)
    n_queries = n_pairs if n_queries is None else n_queries
    _check("n_queries", n_queries, 1)
    _check("spread", spread, 0)
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
    spacers = [" " + filler(rng, spread - 1) if spread else "" for _ in keys]
    pairs = [wording.pair.replace("{k}", k).replace("{v}", v) + f for k, v, f in zip(keys, values, spacers)]
    text, answers = wording.head + wording.separator.join(pairs) + wording.ask, []
    for j, i in enumerate(queries):
        text += (wording.separator if j else "") + wording.query.replace("{k}", keys[i])
        answers.extend(range(len(text), len(text) + value_length))
        text += values[i]
    return TaskSample("recall", text + "\n", tuple(answers))


def repeated_string(seed=0, length: int = 32, alphabet: str = LETTERS, repeats: int = 2, gap: int = 0,
                    filler: Filler = SENTENCES, wording: CopyWording = ORIGINAL["repeat"]) -> TaskSample:
    """A random string, then ``repeats - 1`` copies of it, each after the wording's separator (`` | ``).

    ``gap``: bytes of filler before each separator, so each copy starts that far after the string ends."""
    _check("length", length, 1)
    _check("repeats", repeats, 2)
    _check("gap", gap, 0)
    if not alphabet or not alphabet.isascii() or any(c in alphabet for c in "|\n"):
        raise ValueError("alphabet must be non-empty ASCII without '|' or newline")
    rng = _rng(seed)
    s = "".join(rng.choice(alphabet) for _ in range(length))
    text, answers = wording.head + s, []
    for _ in range(repeats - 1):
        text += (" " + filler(rng, gap - 1) if gap else "") + wording.separator
        answers.extend(range(len(text), len(text) + length))
        text += s
    return TaskSample("repeat", text + "\n", tuple(answers))


# The original passkey sentences (the validation suite builds its call-splitting test from them).
PASSKEY_FACT_HEAD, PASSKEY_FACT_TAIL = ORIGINAL["passkey"].fact.split("{key}")
PASSKEY_QUESTION = ORIGINAL["passkey"].question


def passkey(seed=0, n_distractors: int = 12, digits: int = 5, filler_bytes: int = 0,
            filler: Filler = SENTENCES, wording: PasskeyWording = ORIGINAL["passkey"]) -> TaskSample:
    """A pass key hidden at a random depth among distractor sentences, then asked for.

    ``filler_bytes`` > 0: the key hides in that many bytes of filler text instead (at a word boundary)."""
    _check("n_distractors", n_distractors, 0)
    _check("digits", digits, 1)
    _check("filler_bytes", filler_bytes, 0)
    rng = _rng(seed)
    key = "".join(rng.choice(DIGITS) for _ in range(digits))
    fact = wording.render_fact(key)
    if filler_bytes:
        text = filler(rng, filler_bytes - 1) + " "
        cut = rng.randint(0, len(text))
        cut = text.rfind(" ", 0, cut) + 1  # 0 when no space before: the start
        head = wording.head + text[:cut] + fact + text[cut:] + wording.question
        return TaskSample("passkey", head + key + ".\n", tuple(range(len(head), len(head) + digits)))
    sentences = [DISTRACTORS[i % len(DISTRACTORS)] for i in range(n_distractors)]
    sentences.insert(rng.randint(0, n_distractors), fact)
    head = wording.head + "".join(sentences) + wording.question
    return TaskSample("passkey", head + key + ".\n", tuple(range(len(head), len(head) + digits)))


TASKS = {"recall": associative_recall, "repeat": repeated_string, "passkey": passkey}

# Sizes drawn for training samples when no options are given: {parameter: (low, high)}; ranges shrink
# when the room left is smaller.
TRAINING_SIZES = {"recall": {"n_pairs": (2, 16)}, "repeat": {"length": (8, 64)}, "passkey": {"n_distractors": (0, 24)}}


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


def check_task_options(options: dict | None) -> dict[str, dict]:
    """Validate ``{task: {"weight": w, parameter: [low, high] or value}}`` (a recipe's task mixture).

    Returns it with every range as a (low, high) tuple of integers; raises ValueError on anything else."""
    clean = {}
    for task, params in (options or {}).items():
        if task not in TASKS:
            raise ValueError(f"task options: unknown task {task!r}; choose from {', '.join(TASKS)}")
        if not isinstance(params, dict):
            raise ValueError(f"task options for {task!r} must be an object of parameter ranges")
        allowed = set(TASKS[task].__code__.co_varnames[1:TASKS[task].__code__.co_argcount]) - {"alphabet", "filler", "wording"}
        out = {}
        for name, value in params.items():
            if name == "weight":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"task options: {task}.weight must be a number >= 0, got {value!r}")
                out[name] = float(value)
                continue
            if name not in allowed:
                raise ValueError(f"task options: {task} has no parameter {name!r}; use {', '.join(sorted(allowed))}")
            low, high = (value, value) if not isinstance(value, (list, tuple)) else (tuple(value) + (None,))[:2]
            if (len(value) != 2 if isinstance(value, (list, tuple)) else False) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (low, high)) or low > high:
                raise ValueError(f"task options: {task}.{name} must be an integer >= 0 or a range [low, high], got {value!r}")
            out[name] = (low, high)
        clean[task] = out
    return clean


def _draw(ranges: dict, rng: random.Random) -> dict:
    return {name: rng.randint(low, high) for name, (low, high) in ranges.items()}


def _sample_that_fits(task: str, rng: random.Random, room: int, ranges: dict, filler: Filler,
                      choices: tuple | None = None) -> TaskSample | None:
    params = _draw(ranges, rng)
    seed = rng.getrandbits(64)
    if choices:  # drawn after the seed, and only then: a run in the original wording reproduces exactly
        params["wording"] = rng.choice(choices)
    lows = {name: low for name, (low, _) in ranges.items()}
    while True:  # shrink until it fits; each size gives the same seed, so samples stay reproducible
        sample = make_sample(task, seed, filler=filler, **params)
        if len(sample) <= room:
            return sample
        sizes = {name: value for name, value in params.items() if name in lows}
        if sizes == lows:
            return None
        params.update({name: max(lows[name], min(value - 1, value * room // len(sample))) if value > lows[name] else value
                       for name, value in sizes.items()})


def pack_tasks(seed, length: int, tasks: list[str] | None = None, options: dict | None = None,
               filler: Filler = SENTENCES, phrasings: str = "original") -> tuple[list[int], list[float]]:
    """Exactly ``length`` bytes of whole task samples (tasks drawn at random) and their answer weights.

    ``options`` (see :func:`check_task_options`) set each task's parameter ranges and its weight in the
    draw; a task without options uses ``TRAINING_SIZES``. ``phrasings``: "original" (every sample in the
    original wording), "trained" (each sample's wording drawn from the trained templates) or "binders"
    (recall's binding drawn from many); never "heldout". The tail that no sample fits is distractor text
    with weight 0."""
    if phrasings not in TRAINING_PHRASINGS:
        raise ValueError(f"training phrasings must be one of {', '.join(TRAINING_PHRASINGS)}, got {phrasings!r}")
    _check("length", length, 1)
    tasks = parse_task_names(tasks)
    if not tasks:
        raise ValueError("pack_tasks needs at least one task")
    options = check_task_options(options)
    ranges = {t: {k: v for k, v in options.get(t, TRAINING_SIZES[t]).items() if k != "weight"} for t in tasks}
    weights_of = [options.get(t, {}).get("weight", 1.0) for t in tasks]
    if not any(weights_of):
        raise ValueError("pack_tasks: every task has weight 0")
    rng = _rng(seed)
    tokens, weights = [], []
    while len(tokens) < length:
        sample = None
        first = rng.choices(tasks, weights_of)[0] if options else rng.choice(tasks)
        for task in [first] + [t for t, w in zip(tasks, weights_of) if w]:  # a random task first, then any that fits
            choices = wordings(task, phrasings) if phrasings != "original" else None
            sample = _sample_that_fits(task, rng, length - len(tokens), ranges[task], filler, choices)
            if sample is not None:
                break
        if sample is None:
            break
        tokens += sample.tokens
        weights += sample.weights()
    pad = "".join(DISTRACTORS).encode("ascii")
    while len(tokens) < length:
        tokens += pad[:length - len(tokens)]
    weights += [0.0] * (length - len(weights))
    return tokens, weights
