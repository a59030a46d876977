"""Loss by position (reported, not judged): mean next-byte loss in position bins over long windows of
held-out prose read in 2,048-token calls, for the model and the baseline. Where the memory pays, the
model's loss falls with position faster than the baseline's; the table shows whether it does.
"""
from __future__ import annotations

import time

import torch

from ..model import HopeTransformer
from . import targets
from .prose import HeldoutProse
from .stats import Result, paired_difference

CLAIM = "The memory's value grows with distance: the model's loss falls with position faster than the baseline's."
RULE = "Reported, not judged: the loss per position bin for the model and the baseline, with 95% intervals."


def run(model: HopeTransformer, prose: HeldoutProse, n_windows: int = 8, length: int = 16384, seed: int = 0,
        baseline: HopeTransformer | None = None) -> Result:
    started = time.perf_counter()
    windows = torch.tensor([list(w.encode("ascii")) for w in prose.windows(n_windows, length, f"position/{seed}")])
    ours = targets.loss_by_position(model, windows, seed=seed)
    theirs = targets.loss_by_position(baseline, windows, seed=seed) if baseline is not None else None
    rows, metrics = [], {}
    for i, row in enumerate(ours):
        out = {"positions": row["positions"], **row["loss"].columns("loss")}
        if theirs is not None:
            out.update(theirs[i]["loss"].columns("baseline_loss"))
            difference = paired_difference(row["_loss"], theirs[i]["_loss"], seed)
            out.update(difference.columns("model_minus_baseline"))
            metrics[f"model_minus_baseline_{row['positions']}"] = difference
        metrics[f"loss_{row['positions']}"] = row["loss"]
        rows.append(out)
    return Result(
        name="loss_by_position", title="7. Loss by position", claim=CLAIM, pass_rule=RULE, passed=False, judged=False,
        seeds={"data": seed, "bootstrap": seed}, n_sequences=n_windows, metrics=metrics, tables={"loss_by_position": rows},
        settings={"window_bytes": length, "call_tokens": targets.CALL_TOKENS, "prose": prose.source,
                  "baseline": baseline is not None},
        notes=[] if baseline is not None else ["no baseline given: the model's curve alone"],
        runtime_s=time.perf_counter() - started)
