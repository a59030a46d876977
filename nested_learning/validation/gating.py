"""Property 6: surprise gating. Familiar text is written more gently than novel text: the memory's
learning rate on a held-out passage's second reading is below its rate on the same passage read new at
the same stream position (issue 27: learning rates drift with position, so a reread compared with its
own first reading, which sits earlier, confounds familiarity with position; HOPE.md pitfall 12).

The rate is the gate's output per token and head (mean over heads), from the same forward pass as the
loss. Reported beside the judged difference, per layer and per gap: the old second-minus-first reading,
the rate's slope on surprise with log position as a covariate, and the share of rates within 1% of 0
or of the maximum (whether the gate is pinned).
"""
from __future__ import annotations

import time

from ..model import HopeTransformer
from . import targets
from .measure import local_reach
from .prose import HeldoutProse
from .stats import Result

CLAIM = ("The memory learns quickly from novel text and gently from familiar text: the learning rate on a passage "
         "read a second time is lower than on the same passage read new at the same stream position.")
RULE = ("PASS when, in every layer with a memory and at every gap, the per-passage difference (reread - the same "
        "passage new at the same position) in mean learning rate has a 95% interval below zero. The first-reading "
        "difference, the slope on surprise and the share of pinned rates are reported, not judged.")


def run(model: HopeTransformer, prose: HeldoutProse, n_sequences: int = 64, gaps: tuple[int, ...] = (100, 500),
        length: int = 128, seed: int = 0) -> Result:
    started = time.perf_counter()
    passages = prose.passages(n_sequences, length, f"gating/{seed}")
    rows, metrics, checks = [], {}, {}
    for gap in gaps:
        fillers = prose.fillers(n_sequences, gap, f"gating/{seed}/{gap}")
        for layer in targets.gating(model, passages, fillers, gap, length, seed):
            i = layer["layer"]
            rows.append({"layer": i, "gap": gap, **layer["first"].columns("rate_first"),
                         **layer["second"].columns("rate_reread"), **layer["new_at_same_position"].columns("rate_new"),
                         **layer["reread_minus_new"].columns("reread_minus_new"),
                         **layer["second_minus_first"].columns("second_minus_first"),
                         **layer["surprise_slope"].columns("surprise_slope"), **layer["pinned_share"].columns("pinned_share")})
            metrics[f"layer_{i}_gap_{gap}_rate_reread_minus_new"] = layer["reread_minus_new"]
            metrics[f"layer_{i}_gap_{gap}_rate_second_minus_first"] = layer["second_minus_first"]
            metrics[f"layer_{i}_gap_{gap}_surprise_slope"] = layer["surprise_slope"]
            metrics[f"layer_{i}_gap_{gap}_pinned_share"] = layer["pinned_share"]
            checks[f"layer_{i}_gap_{gap}_reread_gets_a_lower_rate_than_new_text"] = layer["reread_minus_new"].below(0.0)
    notes = []
    if not rows:
        checks["a_layer_with_a_memory"] = False
        notes.append("this config has no memory: no learning rate to measure")
    return Result(
        name="surprise_gating", title="6. Surprise gating", claim=CLAIM, pass_rule=RULE, passed=all(checks.values()),
        seeds={"data": seed, "bootstrap": seed}, n_sequences=n_sequences, metrics=metrics,
        tables={"rate_by_layer": rows}, checks=checks,
        settings={"gaps": list(gaps), "passage_bytes": length, "reach": local_reach(model.config),
                  "max_learning_rate": model.config.max_learning_rate, "prose": prose.source,
                  "control": "the same passage read new at the same stream position, after another passage"},
        notes=notes, runtime_s=time.perf_counter() - started)
