"""Property 3: in-context association. Key-value pairs, then queries: is the value recalled?

Multi-query associative recall from the shared task generator (two-letter keys, two-digit values).
Accuracy is the share of answer digits the model ranks first (chance: 1 in 10 digits). Conditions:
the full model, test-time updates off (memories frozen at their initial state) and attention only
(memory and CMS switched off, where the config has attention).
"""
from __future__ import annotations

import time

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from . import data
from .measure import FULL, available_conditions, masked_mean, score
from .stats import Result, bootstrap, paired_difference

CHANCE = 0.1  # ten digits

CLAIM = ("The model binds keys to values it has only seen in context and recalls them when queried, and its "
         "test-time memory writes contribute to that recall.")
RULE = ("PASS when the full model's answer-digit accuracy, pooled over all pair counts, has a 95% bootstrap interval "
        f"above chance ({CHANCE:g}) AND the per-sequence difference (full - updates off) in accuracy has an "
        "interval entirely above zero. Attention only is reported as a reference, not judged.")


def judge(full: torch.Tensor, updates_off: torch.Tensor, seed: int = 0) -> tuple[dict, dict]:
    """The pass rule on per-sequence answer accuracies [N] (the same sequences in both conditions)."""
    full_estimate = bootstrap(full, seed)
    gain = paired_difference(full, updates_off, seed)
    metrics = {"accuracy_full": full_estimate, "accuracy_updates_off": bootstrap(updates_off, seed),
               "accuracy_full_minus_updates_off": gain}
    return metrics, {"full_above_chance": full_estimate.above(CHANCE), "updates_raise_accuracy": gain.above(0.0)}


def run(model: HopeTransformer, n_sequences: int = 100, pair_counts: tuple[int, ...] = (2, 4, 8, 16), seed: int = 0,
        base: Ablation = FULL) -> Result:
    started = time.perf_counter()
    conditions = available_conditions(model, base)
    accuracy = {name: [] for name in conditions}  # per pair count: [N] per-sequence accuracy
    loss = {name: [] for name in conditions}
    lengths, example = [], None
    for n_pairs in pair_counts:
        batch, answers, _ = data.recall(n_sequences, n_pairs, seed)
        lengths.append(int(batch.tokens.shape[1]))
        if example is None:  # the settings show one sample text: the first batch's
            example = batch.texts[0]
        for name, ablation in conditions.items():
            scores = score(model, batch.tokens, ablation=ablation)
            accuracy[name].append(masked_mean(scores.correct, answers))
            loss[name].append(masked_mean(scores.loss, answers))

    pooled = {name: torch.cat(values) for name, values in accuracy.items()}
    metrics, checks = judge(pooled["full"], pooled["updates_off"], seed)
    if "attention_only" in pooled:
        metrics["accuracy_attention_only"] = bootstrap(pooled["attention_only"], seed)
        metrics["accuracy_full_minus_attention_only"] = paired_difference(pooled["full"], pooled["attention_only"], seed)
    rows = []
    for i, n_pairs in enumerate(pair_counts):
        for name in conditions:
            rows.append({"condition": name, "pairs": n_pairs, "tokens": lengths[i],
                         **bootstrap(accuracy[name][i], seed).columns("accuracy"),
                         **bootstrap(loss[name][i], seed).columns("answer_loss")})
    notes = [] if "attention_only" in conditions else ["no attention in this config: no attention-only control"]
    over_attention = metrics.get("accuracy_full_minus_attention_only")
    if over_attention is not None and not over_attention.above(0.0):
        notes.append(f"attention alone does as well as the full model (full - attention only: {over_attention.text()}): "
                     "any gain over updates off is relative to a frozen memory, not recall the memory adds")
    return Result(
        name="in_context_association", title="3. In-context association", claim=CLAIM, pass_rule=RULE,
        passed=all(checks.values()), seeds={"data": seed, "bootstrap": seed}, n_sequences=n_sequences * len(pair_counts),
        metrics=metrics, tables={"accuracy_by_pairs": rows}, checks=checks,
        settings={"pair_counts": list(pair_counts), "sequences_per_count": n_sequences, "chance": CHANCE,
                  "example": example, "ablation_off": base.names_off()},
        notes=notes, runtime_s=time.perf_counter() - started)
