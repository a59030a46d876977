"""Property 5: long-range persistence. A pass key stated once and a random string read once are still
there thousands of tokens later, through the memory, and reading in calls changes nothing.

Curves over the distance D (bytes of held-out prose between the fact and the question): pass-key
accuracy (all digits right) and loss per letter of a 32-letter copy. Inputs longer than a call are
read in 2,048-token calls with the state carried. Controls: swap and reset before the question / the
copy, the baseline transformer, updates off as a labelled condition. Across calls: the shortest
distance of at least 1,024 bytes is read in 512-token calls and in one call; the logits must agree.
At that distance both are also measured in the many trained wordings and in the held-out ones
(phrasings.py), beside the original wording: reported, not judged.
"""
from __future__ import annotations

import random
import time

import torch

from ..training import tasks
from ..ablation import Ablation
from ..model import HopeTransformer
from . import targets
from .measure import FULL, local_reach, score
from .prose import HeldoutProse
from .stats import Result, paired_difference

TOLERANCE = 1e-4
CALLS_AT = 1024  # the distance also read in small calls
SMALL_CALL = 512

CLAIM = ("A fact read once persists in the test-time memory thousands of tokens beyond attention's reach, and "
         "reading the stream in several calls gives exactly what one call gives.")
RULE = ("PASS when, pooled over the distances beyond the reach: the per-sequence pass-key accuracy (own - swap) has "
        "a 95% interval above zero, the copy loss per letter (own - swap) an interval below zero, and the logits "
        f"read in {SMALL_CALL}-token calls with the state carried match one call within {TOLERANCE:g} relative.")


def calls_match_one_call(model: HopeTransformer, n: int, distance: int, filler: tasks.Filler, seed: int,
                         base: Ablation = FULL) -> float:
    """Largest |carried - one call| over the logits of a pass-key stream, relative to the largest logit."""
    rows = []
    for i in range(n):
        rng = random.Random(f"persistence/calls/{seed}/{i}")
        key = "".join(rng.choice(tasks.DIGITS) for _ in range(5))
        rows.append("passkey: " + tasks.PASSKEY_FACT_HEAD + key + tasks.PASSKEY_FACT_TAIL + filler(rng, distance)
                    + tasks.PASSKEY_QUESTION + key + ".\n")
    tokens = torch.tensor([list(r.encode("ascii")) for r in rows])
    one = score(model, tokens, ablation=base).logits
    state, pieces = None, []
    for start in range(0, tokens.shape[1], SMALL_CALL):
        out = score(model, tokens[:, start:start + SMALL_CALL], state=state, ablation=base)
        state = out.state
        pieces.append(out.logits)
    carried = torch.cat(pieces, 1)
    return float((carried - one).abs().max() / one.abs().max().clamp(min=1e-12))


def by_wording(model: HopeTransformer, n: int, distance: int, filler: tasks.Filler, seed: int, base: Ablation) -> list[dict]:
    """Pass key and copy at ``distance`` in each wording split (original, trained, held-out), own and swap."""
    keys = targets.across_wordings("passkey", model, n, seed, distance=distance, filler=filler, ablation=base,
                                   controls=("own", "swap"))
    copies = targets.across_wordings("repeat", model, n, seed, gap=distance, filler=filler, ablation=base, decoy=False,
                                     controls=("own", "swap"))
    return [{"distance": distance, "wordings": split, "templates": keys[split]["wordings"], "condition": name,
             **keys[split][name].columns("passkey_accuracy"), **copies[split][name].columns("copy_nats_per_letter")}
            for split in targets.WORDING_SPLITS for name in ("own", "swap")]


def run(model: HopeTransformer, prose: HeldoutProse, n_sequences: int = 64, n_long: int = 32,
        distances: tuple[int, ...] = (256, 1024, 2048, 4096, 8192), long_from: int = 4096, seed: int = 0,
        base: Ablation = FULL, baseline: HopeTransformer | None = None) -> Result:
    started = time.perf_counter()
    reach = local_reach(model.config)
    filler, off = prose.filler, base.replace(test_time_updates=False)
    rows, pooled = [], {key: [] for key in ("passkey_own", "passkey_swap", "copy_own", "copy_swap")}
    judged = []
    for D in distances:
        n = n_long if D >= long_from else n_sequences
        key = targets.passkey(model, n, D, filler, base, seed)
        copy = targets.copy(model, n, D, filler, ablation=base, seed=seed, decoy=False)
        key_off = targets.passkey(model, n, D, filler, off, seed, controls=("own",))
        copy_off = targets.copy(model, n, D, filler, ablation=off, seed=seed, decoy=False, controls=("own",))
        conditions = {name: (key[name], copy[name]) for name in ("own", "swap", "reset")}
        conditions["updates off (condition)"] = (key_off["own"], copy_off["own"])
        if baseline is not None:
            conditions["baseline"] = (targets.passkey(baseline, n, D, filler, FULL, seed, controls=("own",))["own"],
                                      targets.copy(baseline, n, D, filler, seed=seed, decoy=False, controls=("own",))["own"])
        for name, (accuracy, loss) in conditions.items():
            rows.append({"distance": D, "token_distance": key["token_distance"], "condition": name,
                         **accuracy.columns("passkey_accuracy"), **loss.columns("copy_nats_per_letter")})
        if reach is not None and key["token_distance"] > reach:
            judged.append(D)
            for name in ("own", "swap"):
                pooled[f"passkey_{name}"].append(key[f"_{name}"])
                pooled[f"copy_{name}"].append(copy[f"_{name}"])
    metrics, checks, notes = {}, {}, []
    if judged:
        cat = {k: torch.cat(v) for k, v in pooled.items()}
        metrics["passkey_accuracy_own_minus_swap"] = key_gain = paired_difference(cat["passkey_own"], cat["passkey_swap"], seed)
        metrics["copy_loss_own_minus_swap"] = copy_gain = paired_difference(cat["copy_own"], cat["copy_swap"], seed)
        checks["passkey_own_memory_beats_swap"] = key_gain.above(0.0)
        checks["copy_own_memory_beats_swap"] = copy_gain.below(0.0)
    else:
        checks["a_distance_beyond_the_reach"] = False
        notes.append("no distance lies beyond the reach of attention and conv (or attention is full): nothing to judge")
    calls_distance = min([d for d in distances if d >= CALLS_AT], default=max(distances))
    difference = calls_match_one_call(model, min(8, n_sequences), calls_distance, filler, seed, base)
    checks["carried_calls_match_one_call"] = difference <= TOLERANCE
    wording_rows = by_wording(model, n_sequences, calls_distance, filler, seed, base)
    return Result(
        name="long_range_persistence", title="5. Long-range persistence", claim=CLAIM, pass_rule=RULE,
        passed=all(checks.values()), seeds={"data": seed, "bootstrap": seed}, n_sequences=n_sequences,
        metrics=metrics, tables={"by_distance": rows, "by_wording": wording_rows}, checks=checks,
        settings={"distances": list(distances), "judged_distances": judged, "window": model.config.attention_window,
                  "reach": reach, "sequences_per_distance": n_sequences, "sequences_from_4096": n_long,
                  "call_tokens": targets.CALL_TOKENS, "calls_distance": calls_distance,
                  "calls_relative_difference": difference, "prose": prose.source, "ablation_off": base.names_off(),
                  "baseline": baseline is not None},
        notes=notes, runtime_s=time.perf_counter() - started)
