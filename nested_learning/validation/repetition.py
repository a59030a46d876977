"""Property 2: repetition learning. A held-out prose passage read again after a gap beyond attention's
reach costs far less the second time, and only with its own memory in place.

Controls (controls.py): swap (another passage's memory at the second reading) and reset (the learned
initial memory); the baseline transformer on the same rows; updates off as a labelled condition.
"""
from __future__ import annotations

import time

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from . import targets
from .measure import FULL, local_reach
from .prose import HeldoutProse
from .stats import Result, bootstrap, bootstrap_ratio, paired_difference

HALF, SWAP_FLOOR = 0.5, 0.9

CLAIM = ("A passage read once is learned at test time: read again beyond attention's reach it costs at most half "
         "as much, and the saving is the memory's: with another passage's memory in place it is gone.")
RULE = (f"PASS when, pooled over the gaps beyond the reach: the second/first loss ratio (ratio of means) has a 95% "
        f"interval at or below {HALF:g}; the swapped-memory ratio is at least {SWAP_FLOOR:g}; and the per-passage "
        "difference (own - swap) in second-reading loss has an interval below zero.")


def _second_by_passage(outs: list[dict], name: str) -> torch.Tensor:
    return torch.stack([o[f"_{name}"] for o in outs]).mean(0)  # [N]: each passage's mean over the gaps


def judge(first: torch.Tensor, own: torch.Tensor, swap: torch.Tensor, seed: int = 0) -> tuple[dict, dict]:
    """The pass rule on per-passage losses [N]: first reading, second with own memory and with a swap."""
    ratio_own, ratio_swap = bootstrap_ratio(own, first, seed), bootstrap_ratio(swap, first, seed)
    difference = paired_difference(own, swap, seed)
    metrics = {"loss_first_reading": bootstrap(first, seed), "loss_second_reading_own": bootstrap(own, seed),
               "loss_second_reading_swap": bootstrap(swap, seed), "ratio_own": ratio_own, "ratio_swap": ratio_swap,
               "second_reading_own_minus_swap": difference}
    checks = {"ratio_at_most_half": ratio_own.ci_high <= HALF, "swap_ratio_at_least_0.9": ratio_swap.mean >= SWAP_FLOOR,
              "own_memory_beats_swap": difference.below(0.0)}
    return metrics, checks


def run(model: HopeTransformer, prose: HeldoutProse, n_sequences: int = 64, length: int = 128,
        gaps: tuple[int, ...] = (100, 250, 500, 1000), seed: int = 0, base: Ablation = FULL,
        baseline: HopeTransformer | None = None) -> Result:
    started = time.perf_counter()
    reach = local_reach(model.config)
    judged = [g for g in gaps if reach is not None and g > reach]
    passages = prose.passages(n_sequences, length, f"repetition/{seed}")
    fillers = prose.fillers(n_sequences, max(gaps), f"repetition/{seed}")
    off = base.replace(test_time_updates=False)
    rows, outs, outs_off, outs_baseline = [], {}, {}, {}
    for gap in gaps:
        outs[gap] = out = targets.reread(model, passages, fillers, gap, length, base, seed)
        outs_off[gap] = targets.reread(model, passages, fillers, gap, length, off, seed, controls=("own",))
        for name in ("own", "swap", "reset"):
            rows.append({"gap": gap, "condition": name, **out[f"ratio_{name}"].columns("ratio"), **out[name].columns("loss")})
        rows.append({"gap": gap, "condition": "updates off (condition)", **outs_off[gap]["ratio_own"].columns("ratio"),
                     **outs_off[gap]["own"].columns("loss")})
        if baseline is not None:
            outs_baseline[gap] = b = targets.reread(baseline, passages, fillers, gap, length, FULL, seed, controls=("own",))
            rows.append({"gap": gap, "condition": "baseline", **b["ratio_own"].columns("ratio"), **b["own"].columns("loss")})
    notes = []
    if judged:
        pooled = [outs[g] for g in judged]
        first = pooled[0]["_first"]
        metrics, checks = judge(first, _second_by_passage(pooled, "own"), _second_by_passage(pooled, "swap"), seed)
        metrics["ratio_reset"] = bootstrap_ratio(_second_by_passage(pooled, "reset"), first, seed)
        metrics["ratio_updates_off_condition"] = bootstrap_ratio(
            _second_by_passage([outs_off[g] for g in judged], "own"), outs_off[judged[0]]["_first"], seed)
        if baseline is not None:
            b = [outs_baseline[g] for g in judged]
            metrics["ratio_baseline"] = bootstrap_ratio(_second_by_passage(b, "own"), b[0]["_first"], seed)
    else:
        metrics, checks = {}, {"a_gap_beyond_the_reach": False}
        notes.append("no gap lies beyond the reach of attention and conv (or attention is full): nothing to judge")
    return Result(
        name="repetition_learning", title="2. Repetition learning", claim=CLAIM, pass_rule=RULE,
        passed=all(checks.values()), seeds={"data": seed, "bootstrap": seed}, n_sequences=n_sequences,
        metrics=metrics, tables={"ratio_by_gap": rows}, checks=checks,
        settings={"passage_bytes": length, "gaps": list(gaps), "judged_gaps": judged, "window": model.config.attention_window,
                  "reach": reach, "prose": prose.source, "example": passages[0], "ablation_off": base.names_off(),
                  "baseline": baseline is not None},
        notes=notes, runtime_s=time.perf_counter() - started)
