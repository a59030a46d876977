"""Property 3: in-context association. Key-value pairs spread beyond attention's reach, then queries:
are the values recalled, and through the memory?

Multi-query associative recall from the shared task generator (two-letter keys, two-digit values), each
pair followed by held-out prose so that pairs lie ``spread + 6`` tokens apart. Accuracy is the share of
answer digits ranked first (chance 1 in 10). Controls: swap and reset before the queries, the baseline
transformer on the same rows, updates off as a labelled condition; a run without filler (pairs within
reach) is a reference. The same recall in the many trained wordings and in the held-out ones
(phrasings.py) is reported beside the original wording, not judged.
"""
from __future__ import annotations

import time

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from . import targets
from .measure import FULL, local_reach
from .prose import HeldoutProse
from .stats import Result, bootstrap, paired_difference

CHANCE = 0.1  # ten digits

CLAIM = ("The model binds keys to values it has seen only in context, further back than attention reaches, and "
         "recalls them through its test-time memory.")
RULE = (f"PASS when, with pairs spread beyond the reach, the full model's answer-digit accuracy has a 95% interval "
        f"above chance ({CHANCE:g}), the per-sequence difference (own - swap) an interval above zero and, when a "
        "baseline is given, (full model - baseline) an interval above zero.")


def judge(own: torch.Tensor, swap: torch.Tensor, baseline: torch.Tensor | None = None, seed: int = 0) -> tuple[dict, dict]:
    """The pass rule on per-sequence answer accuracies [N] (the same sequences under each condition)."""
    accuracy, difference = bootstrap(own, seed), paired_difference(own, swap, seed)
    metrics = {"accuracy_own": accuracy, "accuracy_own_minus_swap": difference}
    checks = {"accuracy_above_chance": accuracy.above(CHANCE), "own_memory_beats_swap": difference.above(0.0)}
    if baseline is not None:
        metrics["accuracy_full_minus_baseline"] = gain = paired_difference(own, baseline, seed)
        checks["full_model_beats_baseline"] = gain.above(0.0)
    return metrics, checks


def run(model: HopeTransformer, prose: HeldoutProse, n_sequences: int = 64, n_pairs: int = 16, spread: int = 48,
        seed: int = 0, base: Ablation = FULL, baseline: HopeTransformer | None = None) -> Result:
    started = time.perf_counter()
    reach = local_reach(model.config)
    filler = prose.filler
    rows, metrics, checks, notes = [], {}, {}, []
    for s in dict.fromkeys((spread, 0)):
        out = targets.recall(model, n_sequences, n_pairs, s, filler, base, seed)
        off = targets.recall(model, n_sequences, n_pairs, s, filler, base.replace(test_time_updates=False), seed,
                             controls=("own",))
        conditions = {"own": out["own"], "swap": out["swap"], "reset": out["reset"], "updates off (condition)": off["own"]}
        base_out = (targets.recall(baseline, n_sequences, n_pairs, s, filler, FULL, seed, controls=("own",))
                    if baseline is not None else None)
        if base_out is not None:
            conditions["baseline"] = base_out["own"]
        for name, estimate in conditions.items():
            rows.append({"spread": s, "pair_distance": out["pair_distance"], "condition": name, **estimate.columns("accuracy")})
        if s != spread:
            continue
        metrics.update({"accuracy_" + name.replace(" (condition)", "_condition").replace(" ", "_"): e
                        for name, e in conditions.items()})
        beyond = reach is not None and out["pair_distance"] > reach
        checks["pairs_beyond_the_reach"] = beyond
        rule_metrics, rule_checks = judge(out["_own"], out["_swap"], None if base_out is None else base_out["_own"], seed)
        metrics.update(rule_metrics)
        checks.update(rule_checks)
        if base_out is None:
            notes.append("no baseline given: the baseline clause is not checked")
        if not beyond:
            notes.append(f"pairs {out['pair_distance']} tokens apart are within the reach ({reach}): nothing to judge")
    wording_rows = []
    for split, out in targets.across_wordings("recall", model, n_sequences, seed, n_pairs=n_pairs, spread=spread,
                                              filler=filler, ablation=base, controls=("own", "swap")).items():
        metrics[f"accuracy_own_{split}_wordings"] = out["own"]
        wording_rows += [{"wordings": split, "templates": out["wordings"], "condition": name, **out[name].columns("accuracy")}
                         for name in ("own", "swap")]
    return Result(
        name="in_context_association", title="3. In-context association", claim=CLAIM, pass_rule=RULE,
        passed=all(checks.values()), seeds={"data": seed, "bootstrap": seed}, n_sequences=n_sequences,
        metrics=metrics, tables={"accuracy_by_condition": rows, "accuracy_by_wording": wording_rows}, checks=checks,
        settings={"pairs": n_pairs, "spread": spread, "window": model.config.attention_window, "reach": reach,
                  "chance": CHANCE, "prose": prose.source, "ablation_off": base.names_off(), "baseline": baseline is not None},
        notes=notes, runtime_s=time.perf_counter() - started)
