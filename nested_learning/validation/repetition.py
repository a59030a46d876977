"""Property 2: repetition learning. A random string read R times gets cheaper each time it is read.

The string is uniform random letters, so no prior knowledge predicts its first reading; any drop on
later readings comes from the context. The control is the same model with test-time updates off
(every memory frozen at its initial state, attention unchanged), so the on-minus-off difference is the
part of the drop the memory's writes are responsible for.
"""
from __future__ import annotations

import time

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from . import data
from .measure import FULL, masked_mean, score
from .stats import Result, bootstrap, bootstrap_ratio, paired_difference

HALF = 0.5

CLAIM = ("A model that learns at test time predicts a random string better each time it rereads it, and its "
         "memory writes are part of why: with test-time updates off, the later readings are predicted worse.")
RULE = ("PASS when, with updates on, the mean loss on the 2nd reading is at most half the mean loss on the 1st "
        "(ratio of means, point estimate) AND the per-sequence difference (updates on - updates off) of the mean "
        "loss over readings 2..R has a 95% bootstrap interval entirely below zero.")


def _surprise(trace: dict, mask: torch.Tensor) -> torch.Tensor | None:
    """Mean surprise ||v - M k|| over layers and heads at the masked positions, per sequence [B]."""
    per_layer = [layer["memory"]["surprise"] for layer in trace.get("layers", {}).values() if "memory" in layer]
    if not per_layer:
        return None
    surprise = torch.stack(per_layer).float().mean(dim=(0, 2)).cpu()  # [layers, B, H, T] -> [B, T]
    return masked_mean(surprise, mask)


def judge(loss_on: torch.Tensor, loss_off: torch.Tensor, seed: int = 0) -> tuple[dict, dict]:
    """The pass rule on per-sequence, per-reading losses [N, R] with updates on and off."""
    later_on, later_off = loss_on[:, 1:].mean(1), loss_off[:, 1:].mean(1)
    ratio = bootstrap_ratio(loss_on[:, 1], loss_on[:, 0], seed)
    difference = paired_difference(later_on, later_off, seed)
    metrics = {
        "loss_reading_1_updates_on": bootstrap(loss_on[:, 0], seed),
        "loss_reading_2_updates_on": bootstrap(loss_on[:, 1], seed),
        "loss_last_reading_updates_on": bootstrap(loss_on[:, -1], seed),
        "loss_later_readings_updates_off": bootstrap(later_off, seed),
        "ratio_reading_2_to_1_updates_on": ratio,
        "later_readings_on_minus_off": difference,
    }
    checks = {"second_reading_at_most_half_the_first": ratio.mean <= HALF,
              "updates_lower_later_loss": difference.below(0.0)}
    return metrics, checks


def run(model: HopeTransformer, n_sequences: int = 100, length: int = 32, repeats: int = 4, seed: int = 0,
        base: Ablation = FULL) -> Result:
    started = time.perf_counter()
    if repeats < 2:
        raise ValueError(f"repetition learning needs at least 2 readings, got {repeats}")
    batch, masks = data.repetitions(n_sequences, length, repeats, seed)
    conditions = {"updates_on": base, "updates_off": base.replace(test_time_updates=False)}
    loss, surprise = {}, {}
    for name, ablation in conditions.items():
        trace = {}  # the per-token surprise comes out of the same forward pass
        scores = score(model, batch.tokens, ablation=ablation, trace=trace)
        loss[name] = torch.stack([masked_mean(scores.loss, m) for m in masks], 1)  # [N, R]
        per_reading = [_surprise(trace, m) for m in masks]
        surprise[name] = torch.stack(per_reading, 1) if per_reading[0] is not None else None

    metrics, checks = judge(loss["updates_on"], loss["updates_off"], seed)
    if surprise["updates_on"] is not None:
        metrics["surprise_reading_1_updates_on"] = bootstrap(surprise["updates_on"][:, 0], seed)
        metrics["surprise_last_reading_updates_on"] = bootstrap(surprise["updates_on"][:, -1], seed)
    rows = []
    for name in conditions:
        for r in range(repeats):
            row = {"condition": name, "reading": r + 1, **bootstrap(loss[name][:, r], seed).columns("loss")}
            if surprise[name] is not None:
                row.update(bootstrap(surprise[name][:, r], seed).columns("surprise"))
            rows.append(row)
    notes = ["surprise is reported, not judged: with updates off it is measured against the frozen initial memory"]
    if surprise["updates_on"] is None:
        notes.append("this config has no memory branch: no surprise to report")
    return Result(
        name="repetition_learning", title="2. Repetition learning", claim=CLAIM, pass_rule=RULE,
        passed=all(checks.values()), seeds={"data": seed, "bootstrap": seed}, n_sequences=n_sequences,
        metrics=metrics, tables={"per_reading": rows}, checks=checks,
        settings={"string_length": length, "readings": repeats, "sequence_tokens": int(batch.tokens.shape[1]),
                  "example": batch.texts[0], "ablation_off": base.names_off()},
        notes=notes, runtime_s=time.perf_counter() - started)
