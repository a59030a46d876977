"""Property 6: surprise gating. Familiar text is written more gently than novel text: the memory's
learning rate on a held-out passage's second reading is below its rate on the first.

The rate is the gate's output per token and head (mean over heads), from the same forward pass as the
loss; the share of rates within 1% of 0 or of the maximum shows whether the gate is pinned.
"""
from __future__ import annotations

import time

from ..model import HopeTransformer
from . import targets
from .measure import local_reach
from .prose import HeldoutProse
from .stats import Result

CLAIM = ("The memory learns quickly from novel text and gently from familiar text: the learning rate on a passage "
         "read a second time is lower than on its first reading.")
RULE = ("PASS when, in every layer with a memory, the per-passage difference (second reading - first) in mean "
        "learning rate has a 95% interval below zero. The share of pinned rates is reported, not judged.")


def run(model: HopeTransformer, prose: HeldoutProse, n_sequences: int = 64, gap: int = 250, length: int = 128,
        seed: int = 0) -> Result:
    started = time.perf_counter()
    passages = prose.passages(n_sequences, length, f"gating/{seed}")
    fillers = prose.fillers(n_sequences, gap, f"gating/{seed}")
    layers = targets.gating(model, passages, fillers, gap, length, seed)
    rows, metrics, checks = [], {}, {}
    for layer in layers:
        i = layer["layer"]
        rows.append({"layer": i, **layer["first"].columns("rate_first"), **layer["second"].columns("rate_second"),
                     **layer["second_minus_first"].columns("second_minus_first"), **layer["pinned_share"].columns("pinned_share")})
        metrics[f"layer_{i}_rate_second_minus_first"] = layer["second_minus_first"]
        metrics[f"layer_{i}_pinned_share"] = layer["pinned_share"]
        checks[f"layer_{i}_familiar_text_gets_a_lower_rate"] = layer["second_minus_first"].below(0.0)
    notes = []
    if not layers:
        checks["a_layer_with_a_memory"] = False
        notes.append("this config has no memory: no learning rate to measure")
    return Result(
        name="surprise_gating", title="6. Surprise gating", claim=CLAIM, pass_rule=RULE, passed=all(checks.values()),
        seeds={"data": seed, "bootstrap": seed}, n_sequences=n_sequences, metrics=metrics,
        tables={"rate_by_layer": rows}, checks=checks,
        settings={"gap": gap, "passage_bytes": length, "reach": local_reach(model.config),
                  "max_learning_rate": model.config.max_learning_rate, "prose": prose.source},
        notes=notes, runtime_s=time.perf_counter() - started)
