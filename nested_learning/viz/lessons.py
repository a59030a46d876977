"""The Learn page's demos as pure functions: each returns tables and figures, no Streamlit. A demo
whose run diverges raises guard.RunRefused naming the token."""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from ..ablation import Ablation
from ..memories.associative import AssociativeMemory
from ..model import HopeTransformer
from ..recording import Recording
from ..training.tasks import associative_recall
from ..tokenizer import ByteTokenizer
from ..validation.paraphrases import PARAPHRASES
from ..validation.targets import REREAD_VARIANTS, reread_variant
from .guard import guarded_record
from .safe_text import plotly_label
from .session import MAX_RUN_TOKENS
from .timelines import mean_surprise, raster_rows, raster_trace, stream_row

# Twelve pairs whose keys share letters (cat/cats/car/cart ...): enough crosstalk that the rules differ.
DEFAULT_STORE = ("cat = meow\ncats = purr\ncar = vroom\ncart = creak\ndog = woof\ndogs = growl\ndot = tick\n"
                 "bird = tweet\nbirds = chirp\nfish = blub\nfist = punch\nfrog = croak")
DEFAULT_PASSES = 3
MAX_PASSES = 5
MAX_PAIRS = 32
MAX_NOTICES = 5  # bad lines named one by one; the rest are counted in one line


# ---- 1. Hebbian vs delta rule ------------------------------------------------------------------
def parse_store(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``key = value`` per line -> pairs (a later line for the same key replaces the earlier one) and notices."""
    pairs, notices, bad = {}, [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            bad += 1
            if bad <= MAX_NOTICES:
                notices.append(f"line {number} is not 'key = value': skipped.")
            continue
        pairs.pop(key, None)
        pairs[key] = value
    if bad > MAX_NOTICES:
        notices.append(f"{bad - MAX_NOTICES} more lines are not 'key = value': skipped.")
    items = list(pairs.items())
    if len(items) > MAX_PAIRS:
        notices.append(f"{len(items)} pairs: only the first {MAX_PAIRS} are stored.")
        items = items[:MAX_PAIRS]
    return items, notices


def word_vector(word: str, dim: int, salt: str = "key") -> torch.Tensor:
    """A unit vector from a word's character trigrams (hashed): words that share letters get correlated
    keys, as real keys are, so Hebbian crosstalk shows up. Deterministic (no Python hash salt)."""
    padded = f"  {word.lower()}  "
    vector = torch.zeros(dim, dtype=torch.float64)
    for i in range(len(padded) - 2):
        digest = hashlib.sha256(f"{salt}:{padded[i:i + 3]}".encode()).digest()
        vector[int.from_bytes(digest[:4], "little") % dim] += 1.0 if digest[4] & 1 else -1.0
    if vector.norm() == 0:
        vector[0] = 1.0
    return vector / vector.norm()


def value_vectors(values: list[str], dim: int) -> dict[str, torch.Tensor]:
    """A random unit vector per distinct value (seeded by the value's text)."""
    out = {}
    for value in dict.fromkeys(values):
        seed = int.from_bytes(hashlib.sha256(f"value:{value}".encode()).digest()[:8], "little")
        v = torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        out[value] = v / v.norm()
    return out


def hebbian_vs_delta(pairs: list[tuple[str, str]], key_dim: int = 16, value_dim: int = 32, passes: int = 1) -> pd.DataFrame:
    """Write every pair ``passes`` times (in order) into a Hebbian and a delta-rule memory (learning rate 1),
    then read every key back. The delta rule writes only what the memory gets wrong, so more passes fix
    the interference of correlated keys (up to key_dim independent keys); Hebbian writes just add up.

    Columns: key, stored value, and per rule the recalled value (nearest stored value by cosine), the
    recall error ||read - value|| and whether the recall is right."""
    if not pairs:
        return pd.DataFrame(columns=["key", "stored", "hebbian recalls", "hebbian error", "delta recalls", "delta error"])
    values = value_vectors([v for _, v in pairs], value_dim)
    names = list(values)
    table = torch.stack([values[n] for n in names])
    keys = torch.stack([word_vector(k, key_dim) for k, _ in pairs])
    targets = torch.stack([values[v] for _, v in pairs])
    rows = {"key": [k for k, _ in pairs], "stored": [v for _, v in pairs]}
    for rule in ("hebbian", "delta"):
        memory = AssociativeMemory(key_dim, value_dim, rule=rule, learning_rate=1.0, dtype=torch.float64)
        for _ in range(passes):
            memory.write(keys, targets)
        read = memory.read(keys)
        nearest = (torch.nn.functional.normalize(read, dim=-1) @ table.T).argmax(-1)
        rows[f"{rule} recalls"] = [names[i] for i in nearest.tolist()]
        rows[f"{rule} error"] = (read - targets).norm(dim=-1).numpy()
    return pd.DataFrame(rows)


def passes_curve(pairs: list[tuple[str, str]], max_passes: int = MAX_PASSES) -> pd.DataFrame:
    """Per number of passes 1..max_passes: each rule's mean recall error and share recalled right."""
    rows = []
    for passes in range(1, max_passes + 1):
        table = hebbian_vs_delta(pairs, passes=passes)
        rows.append({"passes": passes,
                     **{f"{rule} error": float(table[f"{rule} error"].mean()) for rule in ("hebbian", "delta")},
                     **{f"{rule} right": float((table[f"{rule} recalls"] == table["stored"]).mean())
                        for rule in ("hebbian", "delta")}})
    return pd.DataFrame(rows)


def store_verdict(curve: pd.DataFrame, passes: int) -> list[tuple[bool, str]]:
    """The lesson's claims checked on these numbers: (holds, sentence) for each, with the numbers."""
    row = curve.set_index("passes").loc[passes]
    first, last = curve.iloc[0], curve.iloc[-1]
    n = len(curve)
    checks = [
        (bool(row["delta error"] < row["hebbian error"]),
         f"After {passes} pass{'es' if passes > 1 else ''} the delta rule's mean recall error is "
         f"{row['delta error']:.2f}, Hebbian's {row['hebbian error']:.2f}."),
        (bool(last["hebbian error"] > first["hebbian error"] and last["delta error"] < first["delta error"]),
         f"Writing again: from 1 to {n} passes Hebbian error goes {first['hebbian error']:.2f} -> "
         f"{last['hebbian error']:.2f} (M only grows), delta error {first['delta error']:.2f} -> {last['delta error']:.2f}."),
    ]
    if row["delta right"] >= row["hebbian right"]:
        checks.append((True, f"Recalled right: delta rule {row['delta right']:.0%}, Hebbian {row['hebbian right']:.0%}."))
    else:
        better = curve[curve["delta right"] >= curve["hebbian right"]]
        fix = (f"from {int(better['passes'].iloc[0])} passes on it recalls as many or more"
               if len(better) else f"not within {n} passes on this store")
        checks.append((False, f"Recalled right: Hebbian {row['hebbian right']:.0%}, delta rule {row['delta right']:.0%}. "
                              "Written once, the delta rule's later writes of similar keys overwrite part of the "
                              f"earlier ones; {fix}."))
    return checks


STORE_OUTCOMES = ("Hebbian", "both the same", "delta rule")


def store_outcome(table: pd.DataFrame) -> str:
    """What the class is asked to predict: which rule recalled more pairs right."""
    hebbian, delta = ((table[f"{rule} recalls"] == table["stored"]).mean() for rule in ("hebbian", "delta"))
    return STORE_OUTCOMES[2] if delta > hebbian else STORE_OUTCOMES[0] if hebbian > delta else STORE_OUTCOMES[1]


def passes_figure(curve: pd.DataFrame, passes: int) -> go.Figure:
    fig = go.Figure([go.Scatter(x=curve["passes"], y=curve[f"{rule} error"], mode="lines+markers", name=name)
                     for rule, name in (("hebbian", "Hebbian"), ("delta", "delta rule"))])
    fig.add_vline(x=passes, line=dict(color="gray", dash="dot"))
    fig.update_layout(height=260, xaxis_title="passes over the store", yaxis_title="mean recall error",
                      xaxis=dict(dtick=1), margin=dict(l=10, r=10, t=20, b=10))
    return fig


def store_figure(table: pd.DataFrame) -> go.Figure:
    keys = [plotly_label(k) for k in table["key"]]
    fig = go.Figure([go.Bar(x=keys, y=table["hebbian error"], name="Hebbian"),
                     go.Bar(x=keys, y=table["delta error"], name="delta rule")])
    fig.update_layout(barmode="group", height=320, yaxis_title="recall error ||M k - v||",
                      margin=dict(l=10, r=10, t=30, b=10))
    return fig


# ---- 2. surprise falls when a phrase repeats ---------------------------------------------------
def repetition(model: HopeTransformer, phrase: str, times: int = 4,
               ablation: Ablation | None = None) -> tuple[Recording, pd.DataFrame]:
    """Read ``phrase`` ``times`` times in one stream; per copy each memory layer's mean surprise and learning
    rate (over its heads) and the loss. Per layer: a trained model may leave one layer's memory nearly still,
    and a mean over layers would hide the other's learning."""
    recording, _ = guarded_record(model, phrase * times, ablation=ablation or Ablation())
    n = len(ByteTokenizer().encode(phrase))
    # The learning rate beside each surprise: a layer whose rate stays near its floor barely writes.
    per_layer = {f"{what}, layer {i}": stream_row(recording, stream, i) for i in recording.memory_layers
                 for what, stream in (("surprise", "surprise"), ("learning rate", "learning_rate"))}
    loss = recording.stream("loss").double().numpy()
    copy = lambda values, i: float(np.nanmean(values[i * n:(i + 1) * n]))
    rows = [{"copy": i + 1, **{name: copy(values, i) for name, values in per_layer.items()}, "mean loss": copy(loss, i)}
            for i in range(times)]
    return recording, pd.DataFrame(rows)


def surprise_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("surprise, layer ")]


REPETITION_OUTCOMES = ("lower", "about the same", "higher")


def repetition_outcome(table: pd.DataFrame) -> str:
    """What the class is asked to predict: surprise on the last copy against the first (within 10% "about
    the same"), per memory layer when the layers differ ("lower in layer 0, higher in layer 1")."""
    def outcome(column):
        first, last = table[column].iloc[0], table[column].iloc[-1]
        return REPETITION_OUTCOMES[0] if last < 0.9 * first else REPETITION_OUTCOMES[2] if last > 1.1 * first else REPETITION_OUTCOMES[1]
    columns = surprise_columns(table)
    if not columns:
        return "no test-time memory"
    found = [outcome(c) for c in columns]
    if len(set(found)) == 1:
        return found[0]
    return ", ".join(f"{o} in {c.removeprefix('surprise, ')}" for o, c in zip(found, columns))


def repetition_verdict(table: pd.DataFrame) -> list[tuple[bool, str]]:
    """Does surprise fall from the first copy to the last in each memory layer, and does the loss? Each
    claim with its numbers."""
    first, last = table.iloc[0], table.iloc[-1]

    def claim(what: str, column: str, aside: str = "") -> tuple[bool, str]:
        a, b = first[column], last[column]
        falls = bool(b < a)
        return falls, (f"{what} {'fell' if falls else 'did not fall'}: {a:.3f} on copy 1, {b:.3f} on copy {len(table)}"
                       f"{aside}" + ("." if falls else ": this model does not show it on this phrase."))

    columns = surprise_columns(table)
    checks = [] if columns else [(False, "Surprise: this model has no test-time memory to show it.")]
    for column in columns:
        rate = table.get(column.replace("surprise", "learning rate"))  # how much that layer's memory writes at all
        aside = "" if rate is None else f" (its learning rate {rate.min():.3f}-{rate.max():.3f})"
        checks.append(claim("Surprise in " + column.removeprefix("surprise, "), column, aside))
    return checks + [claim("Loss (nats per byte)", "mean loss")]


def surprise_by_copy_figure(recording: Recording, copy_length: int, title: str = "") -> go.Figure:
    """Surprise per token, one line per memory layer (mean over its heads), a dotted line at each new copy."""
    fig = go.Figure([go.Scatter(x=np.arange(recording.n_tokens), y=stream_row(recording, "surprise", i), mode="lines",
                                name=f"layer {i}") for i in recording.memory_layers])
    for start in range(copy_length, recording.n_tokens, copy_length):
        fig.add_vline(x=start - 0.5, line=dict(color="gray", dash="dot"))
    fig.update_layout(height=280, title=title, xaxis_title="token", yaxis_title="surprise (mean over heads)",
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


# ---- 3. CMS levels update at different rates ---------------------------------------------------
CMS_PHRASE = "the cat sat on the mat. "
CMS_MIN_TOKENS = 96


def cms_lesson_tokens(periods: tuple[int, ...]) -> int:
    """Tokens the CMS lesson reads: enough for the slowest level to update twice, within one run."""
    return min(MAX_RUN_TOKENS, max(CMS_MIN_TOKENS, 2 * max(periods, default=1)))


def cms_run(model: HopeTransformer, ablation: Ablation | None = None) -> Recording:
    """The lesson's phrase repeated to ``cms_lesson_tokens`` tokens, recorded: a model whose slowest level
    updates every 1,024 tokens reads 2,048, one with periods 1-8 reads 96."""
    n = cms_lesson_tokens(model.config.cms_periods)
    text = (CMS_PHRASE * (n // len(CMS_PHRASE) + 1))[:n]
    recording, _ = guarded_record(model, text, ablation=ablation or Ablation())
    return recording


def cms_periods_sentence(periods: tuple[int, ...]) -> str:
    """This model's periods in a sentence: "Level 0 updates every 16 tokens, level 1 every 64 tokens and level 2
    every 256 tokens."."""
    unit = lambda p: "token" if p == 1 else f"{p:,} tokens"
    said = [f"Level 0 updates every {unit(periods[0])}"] + [f"level {j} every {unit(p)}" for j, p in enumerate(periods) if j]
    return (said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]) + "."


def cms_rates(recording: Recording, layer: int = 0) -> tuple[pd.DataFrame, go.Figure]:
    """Updates per level of one layer: count, period, mean update norm; and the raster of that layer."""
    events = recording.cms_events()
    events = events[events["layer"] == layer]
    periods = recording.config.cms_periods
    table = pd.DataFrame({"level": range(len(periods)), "period (tokens)": periods,
                          "updates": [int((events["level"] == j).sum()) for j in range(len(periods))],
                          "mean update norm": [float(events.loc[events["level"] == j, "update_norm"].mean())
                                               if (events["level"] == j).any() else np.nan for j in range(len(periods))]})
    rows = [r for r in raster_rows(recording) if r[0] == layer]
    fig = go.Figure(raster_trace(events, recording.start_position, rows))
    fig.update_yaxes(tickvals=list(range(len(rows))), ticktext=[f"level {v} (period {periods[v]})" for _, v in rows],
                     autorange="reversed")
    fig.update_layout(height=260, xaxis_title="token", margin=dict(l=10, r=10, t=20, b=10))
    return table, fig


CMS_OUTCOMES = ("as often as level 0", "less often, changing more each time", "less often, changing less each time")


def cms_outcome(table: pd.DataFrame) -> str:
    """What the class is asked to predict: how the slowest level's updates compare with level 0's."""
    fast, slow = table.iloc[0], table.iloc[-1]
    if slow["updates"] >= fast["updates"]:
        return CMS_OUTCOMES[0]
    return CMS_OUTCOMES[1] if slow["mean update norm"] > fast["mean update norm"] else CMS_OUTCOMES[2]


def cms_verdict(table: pd.DataFrame, n_tokens: int) -> list[tuple[bool, str]]:
    """The lesson's claims on these numbers: each level updates once per period, and the slow levels
    follow the moment less (their weights move less in total over the text)."""
    expected = [n_tokens // p for p in table["period (tokens)"]]
    counts = list(table["updates"])
    total = (table["updates"] * table["mean update norm"]).tolist()
    calmer = len(total) > 1 and all(a > b for a, b in zip(total, total[1:]))
    listed = ", ".join(f"level {j} {t:.3g}" for j, t in enumerate(total))
    return [(counts == expected, f"Each level updated once per period: {', '.join(map(str, counts))} updates in "
                                 f"{n_tokens} tokens (expected {', '.join(map(str, expected))})."),
            (calmer, f"Slower levels moved less in total (sum of update sizes: {listed})" +
             ("." if calmer else ": not on this model and text."))]


# ---- 4. in-context association recall ----------------------------------------------------------
def association_recall(model: HopeTransformer, seed: int = 0, n_pairs: int = 8,
                       ablation: Ablation | None = None) -> tuple[str, pd.DataFrame, float]:
    """A key-value sample; per answer byte the model's top-1 guess (from the bytes before it). Returns
    (text, table, accuracy)."""
    sample = associative_recall(seed=seed, n_pairs=n_pairs)
    recording, _ = guarded_record(model, sample.text, ablation=ablation or Ablation())
    top1 = recording.stream("topk.ids")[:, 0]
    probs = recording.stream("topk.probs")[:, 0]
    label = ByteTokenizer.token_label
    rows = [{"position": p, "context": sample.text[max(0, p - 4):p], "answer": sample.text[p],
             "model predicts": label(int(top1[p - 1])), "probability": float(probs[p - 1]),
             "right": bool(int(top1[p - 1]) == sample.tokens[p])} for p in sample.answer_positions]
    table = pd.DataFrame(rows)
    return sample.text, table, float(table["right"].mean())


@dataclass(frozen=True)
class RecallLesson:
    text: str
    table: pd.DataFrame  # per answer byte: context, answer, the model's top guess, right
    accuracy: float  # share of answer bytes predicted right, test-time updates on
    frozen: float  # the same with test-time updates off
    checks: list  # recall_verdict
    outcome: str  # in RECALL_OUTCOMES: what the class is asked to predict


RECALL_OUTCOMES = ("about chance (10%)", "some", "most")


def recall_lesson(model: HopeTransformer, seed: int = 0, n_pairs: int = 8) -> RecallLesson:
    """The in-context recall lesson: one sample read with updates on and off, judged by ``recall_verdict``."""
    text, table, accuracy = association_recall(model, seed, n_pairs)
    _, _, frozen = association_recall(model, seed, n_pairs, ablation=Ablation(test_time_updates=False))
    checks = recall_verdict(accuracy, frozen, len(table))
    outcome = RECALL_OUTCOMES[2] if accuracy > 0.5 else RECALL_OUTCOMES[1] if checks[0][0] else RECALL_OUTCOMES[0]
    return RecallLesson(text, table, accuracy, frozen, checks, outcome)


def recall_verdict(accuracy: float, frozen: float, n_answers: int) -> list[tuple[bool, str]]:
    """Recall above chance (10% for digits), and what the memory's writes add (updates off)."""
    right, chance = round(accuracy * n_answers), 0.1
    # Above chance: at least this many right is unlikely by guessing (binomial tail < 5%).
    needed = next(k for k in range(n_answers + 2)
                  if sum(math.comb(n_answers, j) * chance ** j * (1 - chance) ** (n_answers - j)
                         for j in range(k, n_answers + 1)) < 0.05)
    above = right >= needed
    checks = [(above, f"{right} of {n_answers} answer digits right ({accuracy:.0%}; chance 10%, and {needed} or more "
                      "would be unlikely by guessing)" + ("." if above else ": this model does not show recall on this sample."))]
    helps = accuracy > frozen
    checks.append((helps, f"With test-time updates off: {frozen:.0%}" +
                   (": the memory's writes add to recall." if helps else
                    ": the writes add nothing here; what recall there is comes from the rest of the model.")))
    return checks


# ---- 5. memory switched off forgets ------------------------------------------------------------
def forgetting(model: HopeTransformer, text: str) -> tuple[pd.DataFrame, dict[str, Recording]]:
    """Read ``text``, then read it again in a second call carrying the state: with test-time updates on,
    the second reading benefits from the first; with them off, the memory stays as it started.

    Returns per setting the mean surprise and loss of the first and second reading."""
    rows, recordings = [], {}
    for name, ablation in (("memory learns", Ablation()), ("updates off", Ablation(test_time_updates=False))):
        first, state = guarded_record(model, text, ablation=ablation)
        second, _ = guarded_record(model, text, state=state, ablation=ablation)
        recordings[name] = second
        for reading, rec in (("first", first), ("second", second)):
            rows.append({"setting": name, "reading": reading, "mean surprise": float(np.nanmean(mean_surprise(rec))),
                         "mean loss": float(np.nanmean(rec.stream("loss")[:-1].double().numpy()))})
    return pd.DataFrame(rows), recordings


def forgetting_verdict(table: pd.DataFrame) -> list[tuple[bool, str]]:
    """The second reading is less surprising with updates on, and less so than with them off."""
    pivot = table.pivot(index="setting", columns="reading", values="mean surprise")
    on, off = pivot.loc["memory learns"], pivot.loc["updates off"]
    if not np.isfinite(on["first"]):
        return [(False, "This model has no test-time memory to show it.")]
    ratio_on, ratio_off = on["second"] / on["first"], off["second"] / off["first"]
    learned = bool(ratio_on < 1)
    return [(learned, f"Updates on: surprise {on['first']:.3f} on the first reading, {on['second']:.3f} on the second "
                      f"({ratio_on:.2f}x)" + ("." if learned else ": the memory did not make the rereading less surprising.")),
            (bool(ratio_on < ratio_off), f"Updates off: {off['first']:.3f} then {off['second']:.3f} ({ratio_off:.2f}x): "
             + ("the drop with updates on is the memory's doing." if ratio_on < ratio_off
                else "no larger drop than with updates on, so this model does not show it.")),]


# ---- 6. what a reread carries when it is not verbatim ------------------------------------------
REREAD_EXAMPLE = PARAPHRASES[0]  # a passage and its paraphrase, text no training step saw
VARIANT_LABELS = {"verbatim": "the same words", "shuffled": "sentences shuffled",
                  "corrupted": "1 byte in 10 changed", "paraphrased": "paraphrased"}


def reread_variants(model: HopeTransformer, passage: str, paraphrase: str, seed: int = 0) -> pd.DataFrame:
    """Read ``passage``, then read it again changed (REREAD_VARIANTS): mean loss of the second reading when
    the memory wrote the first reading and when it did not (updates off for the first reading only; the
    second is read with updates on both times). ``ratio`` below 1 is what the first reading left in the
    memory for a reading that is not a copy."""
    rows = []
    for kind in REREAD_VARIANTS:
        second_text, _ = reread_variant(kind, passage, paraphrase, random.Random(f"learn/variants/{seed}/{kind}"))
        losses = []
        for first_reading in (Ablation(), Ablation(test_time_updates=False)):
            _, state = guarded_record(model, passage + " ", ablation=first_reading)
            second, _ = guarded_record(model, second_text, state=state)
            losses.append(float(np.nanmean(second.stream("loss")[:-1].double().numpy())))
        rows.append({"second reading": VARIANT_LABELS[kind], "text": second_text, "loss, first reading written": losses[0],
                     "loss, first reading not written": losses[1], "ratio": losses[0] / losses[1]})
    return pd.DataFrame(rows)


def reread_variants_verdict(table: pd.DataFrame) -> list[tuple[bool, str]]:
    """Per variant: did the memory's first reading make this second reading cheaper?"""
    checks = []
    for row in table.itertuples(index=False):
        helped = bool(row.ratio < 1)
        checks.append((helped, f"{row[0].capitalize()}: {row[2]:.2f} nats per byte after the memory wrote the first "
                               f"reading, {row[3]:.2f} when it did not ({row.ratio:.2f}x)"
                               + ("." if helped else ": the memory did not help this reading.")))
    return checks
