"""The wordings of the synthetic memory tasks: many for training, a disjoint set held out.

A model that finds a pass key 88% of the time in its training's one wording found it 2% of the time in
another (HOPE.md pitfall 11). So every task draws its wording from many templates, and a held-out set is
never used in training; a claim about the memory holds only in the held-out wordings.

Each task's templates are the product of a few component lists (the prefix before the task, the noun or
binding, the separators, the question form, where the key sits). The split is by component: no
held-out template shares a prefix, noun, binding, separator or question with a trained one, so the
held-out wordings are words the training never saw, not new combinations of seen ones.

    passkey  head + fact (holds the key) + filler + question + key      trained 288, held-out 24
    repeat   head + string + filler + separator + string               trained  64, held-out 25
    recall   head + pairs (separated) + ask + queries (separated)      trained 180, held-out 24

``ORIGINAL`` is the wording every checkpoint before the many-wordings recipe was trained in; it is one
of the trained templates, so earlier recipes reproduce byte for byte. The held-out set is committed
before the training run it judges (tests pin its digest: it cannot change silently).
"""
from __future__ import annotations

import hashlib
import itertools
import random
import re
from dataclasses import dataclass

KEY = "{key}"  # where a pass key's digits sit in a fact


@dataclass(frozen=True)
class PasskeyWording:
    head: str  # before everything: the task's prefix
    fact: str  # the sentence that states the key, holding KEY
    question: str  # the question, ending where the key's digits follow

    def render_fact(self, key: str) -> str:
        return self.fact.replace(KEY, key)

    def shared_ending(self) -> int:
        """Bytes the question's end shares with what stood before the key: what a memory that fetches a
        value by the bytes before it has to find the key with (the original wording: 17)."""
        before, length = self.head + self.fact.split(KEY)[0], 0
        while length < min(len(before), len(self.question)) and before[-length - 1] == self.question[-length - 1]:
            length += 1
        return length

    def echoed(self) -> "PasskeyWording":
        """The question followed by the fact's words before the key ("Tell me the PIN. It is I set the PIN
        to "): the same words, with the bytes before the answer those before the key (a probe, not trained)."""
        return PasskeyWording(self.head, self.fact, self.question + (self.fact.split(KEY)[0] or self.head))

    def pattern(self) -> re.Pattern:
        """A whole sample in this wording (filler of any text without a newline)."""
        fact = re.escape(self.fact).replace(re.escape(KEY), "[0-9]+")
        return re.compile(f"{re.escape(self.head)}.*{fact}.*{re.escape(self.question)}[0-9]+\\.\n", re.DOTALL)


@dataclass(frozen=True)
class CopyWording:
    head: str  # before the string
    separator: str  # before each copy

    def pattern(self) -> re.Pattern:
        return re.compile(f"{re.escape(self.head)}([a-z]+).*{re.escape(self.separator)}\\1\n", re.DOTALL)


@dataclass(frozen=True)
class RecallWording:
    head: str  # before the pairs
    pair: str  # one key-value pair: holds {k} and {v}
    query: str  # one query: holds {k}, ends where the value follows
    separator: str  # between pairs and between queries
    ask: str  # between the pairs and the queries

    @property
    def marker(self) -> str:
        """The visible part of ``ask``: the queries start at its last occurrence before the first answer."""
        return self.ask.strip()

    def pattern(self) -> re.Pattern:
        sep = re.escape(self.separator)
        pair = re.escape(self.pair).replace(re.escape("{k}"), "[a-z]+").replace(re.escape("{v}"), "[0-9]+")
        query = re.escape(self.query).replace(re.escape("{k}"), "[a-z]+") + "[0-9]+"
        return re.compile(f"{re.escape(self.head)}{pair}.*{re.escape(self.ask)}{query}({sep}{query})*\n", re.DOTALL)


def _passkeys(heads, nouns, facts, questions) -> tuple[PasskeyWording, ...]:
    return tuple(PasskeyWording(h, f.replace("{noun}", n), q.replace("{noun}", n))
                 for h, n, f, q in itertools.product(heads, nouns, facts, questions))


def _copies(heads, separators) -> tuple[CopyWording, ...]:
    return tuple(CopyWording(h, s) for h, s in itertools.product(heads, separators))


def _recalls(heads, bindings, separators, asks) -> tuple[RecallWording, ...]:
    return tuple(RecallWording(h, pair, query, s, a)
                 for h, (pair, query), s, a in itertools.product(heads, bindings, separators, asks))


# The first entry of each trained list is the original wording.
PASSKEY_TRAINED = _passkeys(
    heads=("passkey: ", "", "Memory test. ", "Read this. "),
    nouns=("pass key", "secret number", "access code", "door code", "magic number", "password"),
    facts=("The {noun} is {key}. Remember it. ", "Remember: the {noun} is {key}. ", "{key} is the {noun}. ",
           "Your {noun}: {key}. "),
    questions=("What is the {noun}? The {noun} is ", "What was the {noun}? It was ", "Q: the {noun}? A: "))
PASSKEY_HELDOUT = _passkeys(
    heads=("Note well. ", "Test: "),
    nouns=("locker code", "PIN", "vault number"),
    facts=("I set the {noun} to {key}. ", "Write down the {noun}, {key}, and keep it. "),
    questions=("Tell me the {noun}. It is ", "Which {noun} did I give you? The answer is "))

COPY_TRAINED = _copies(
    heads=("repeat: ", "copy: ", "Copy this: ", "Say it twice: ", "echo ", "string ", "Memorise ", "Letters: "),
    separators=(" | ", " => ", " again: ", " ... ", " / ", " copy: ", " The string was ", " -- "))
COPY_HELDOUT = _copies(
    heads=("Write it again later: ", "Duplicate: ", "Remember the letters ", "Keep this in mind: ", "Here is a code: "),
    separators=(" Once more: ", " >> ", " Now repeat it: ", " = ", " and again "))

RECALL_TRAINED = _recalls(
    heads=("recall: ", "Pairs: ", "Remember these: ", "Table: "),
    bindings=(("{k}={v}", "{k}="), ("{k}: {v}", "{k}: "), ("{k} -> {v}", "{k} -> "), ("{k} is {v}", "{k} is "),
              ("{k} maps to {v}", "{k} maps to ")),
    separators=(" ", ", ", " / "),
    asks=(" ; ", " Now the values: ", " | "))
RECALL_HELDOUT = _recalls(
    heads=("Facts to keep: ", "Lookup list: "),
    bindings=(("{k} has {v}", "{k} has "), ("{k}~{v}", "{k}~"), ("{k} equals {v}", "{k} equals ")),
    separators=(" and ", " + "),
    asks=(" Questions follow: ", " # "))

ORIGINAL = {"passkey": PASSKEY_TRAINED[0], "repeat": COPY_TRAINED[0], "recall": RECALL_TRAINED[0]}


def _binders(n: int = 240, seed: int = 0) -> tuple[RecallWording, ...]:
    """Recall in the original wording with ``n`` other bindings between a key and its value: a seeded
    word of 1-8 letters between spaces, or 1-3 marks (``--task-phrasings binders``: keys must reach past
    the binding). None shares a held-out binding's word or mark, holds a digit or the ask's ``;``."""
    rng, held_out = random.Random(f"phrasings/binders/{seed}"), [w.pair[3:-3] for w in RECALL_HELDOUT]
    marks, out, seen = ":=-><|/.,!?*&^%$#@", [], set()
    while len(out) < n:
        if rng.random() < 0.7:
            binder = " " + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 8))) + " "
        else:
            binder = "".join(rng.choice(marks) for _ in range(rng.randint(1, 3)))
        if binder in seen or any(h.strip() and h.strip() in binder for h in held_out):
            continue
        seen.add(binder)
        o = RECALL_TRAINED[0]
        out.append(RecallWording(o.head, "{k}" + binder + "{v}", "{k}" + binder, o.separator, o.ask))
    return tuple(out)


RECALL_BINDERS = _binders()
WORDINGS = {"trained": {"passkey": PASSKEY_TRAINED, "repeat": COPY_TRAINED, "recall": RECALL_TRAINED},
            "heldout": {"passkey": PASSKEY_HELDOUT, "repeat": COPY_HELDOUT, "recall": RECALL_HELDOUT}}
# What a training run draws its wordings from (TrainConfig.task_phrasings): the original alone, every trained
# one, or the original with recall's binding drawn from RECALL_BINDERS (the other tasks original).
TRAINING_CHOICES = ("original", "trained", "binders")


def wordings(task: str, split: str) -> tuple:
    """The templates of ``task`` in ``split``: "original" (one), "trained" or "heldout"."""
    if split == "original" or (split == "binders" and task != "recall"):
        return (ORIGINAL[task],)
    if split == "binders":
        return RECALL_BINDERS
    if split not in WORDINGS:
        raise ValueError(f"unknown wording split {split!r}; choose original, trained or heldout")
    return WORDINGS[split][task]


def digest(split: str) -> str:
    """A short hash of every template of ``split``: a test pins the held-out one."""
    text = repr({task: WORDINGS[split][task] for task in sorted(WORDINGS[split])})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
