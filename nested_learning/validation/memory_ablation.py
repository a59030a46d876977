"""Property 4: memory ablation. One table like the paper's ablation table, twice: on prose rereads and
on the memory tasks. Each component switched off alone, and the swap and reset controls, on the same
held-out rows; every row is the loss change against the full model with its paired 95% interval.

Prose: the second reading of a 128-byte held-out passage read again after ``gap`` tokens of other prose
(loss over its bytes 1..127). Tasks: the answer bytes of a 32-letter copy after ``gap`` tokens, of
associative recall with pairs spread beyond the reach, and of a pass key asked ``distance`` tokens
after it was stated. Updates off is a further row, labelled a condition (docs/validation.md: a model trained with its memory is broken without it).
"""
from __future__ import annotations

import time

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from . import targets
from .measure import FULL, local_reach
from .prose import HeldoutProse
from .stats import Result, paired_difference

CLAIM = ("The test-time memory carries what this document said and the model uses it: switching the memory off "
         "or giving the document another document's memory raises the loss of a passage read again.")
RULE = ("PASS when, on prose rereads, the per-passage increase in second-reading loss both without the memory and "
        "with the swapped memory has a 95% interval above zero. Every other row is reported (hurts / helps / no "
        "clear effect), not judged.")


def components(model: HopeTransformer, base: Ablation = FULL) -> dict[str, Ablation]:
    """One ablation per component this config has (and ``base`` leaves on), each switching it off alone."""
    out = {}
    for name in base.applicable(model.config):
        if name.startswith("cms."):
            out[name] = base.replace(cms_levels_off=base.cms_levels_off | {int(name[4:])})
        else:
            out[name] = base.replace(**{name: False})
    return out


def _effect(change) -> str:
    return "hurts" if change.above(0.0) else "helps" if change.below(0.0) else "no clear effect"


def _measure(model, prose_rows, n, gap, spread, distance, filler, ablation, seed,
             controls=targets.CONTROLS) -> dict[str, dict[str, torch.Tensor]]:
    """Per-row losses of each measurement under ``ablation``, for the own memory and each control."""
    passages, fillers = prose_rows
    reread = targets.reread(model, passages, fillers, gap, ablation=ablation, seed=seed, controls=controls)
    copy = targets.copy(model, n, gap, filler, ablation=ablation, seed=seed, decoy=False, controls=controls)
    recall = targets.recall(model, n, 16, spread, filler, ablation=ablation, seed=seed, controls=controls)
    passkey = targets.passkey(model, n, distance, filler, ablation=ablation, seed=seed, controls=controls)
    return {control: {"prose reread": reread[f"_{control}"], "copy": copy[f"_{control}"],
                      "recall": recall[f"_loss_{control}"], "passkey": passkey[f"_loss_{control}"]}
            for control in controls}


def run(model: HopeTransformer, prose: HeldoutProse, n_sequences: int = 64, gap: int = 250, spread: int = 48,
        distance: int = 1000, seed: int = 0, base: Ablation = FULL) -> Result:
    started = time.perf_counter()
    prose_rows = (prose.passages(n_sequences, 128, f"ablation/{seed}"), prose.fillers(n_sequences, gap, f"ablation/{seed}"))
    full = _measure(model, prose_rows, n_sequences, gap, spread, distance, prose.filler, base, seed)
    rows_of = {"without " + name: ablation for name, ablation in components(model, base).items()
               if name != "test_time_updates"}
    if "test_time_updates" in components(model, base):
        rows_of["updates off (condition)"] = base.replace(test_time_updates=False)
    measured = {name: _measure(model, prose_rows, n_sequences, gap, spread, distance, prose.filler, ablation, seed,
                               ("own",))["own"]
                for name, ablation in rows_of.items()}
    measured["swap (control)"], measured["reset (control)"] = full["swap"], full["reset"]
    rows, metrics = [], {}
    for name, losses in measured.items():
        for task, loss in losses.items():
            change = paired_difference(loss, full["own"][task], seed)
            rows.append({"table": "prose" if task == "prose reread" else "tasks", "measurement": task, "row": name,
                         **change.columns("loss_change"), "effect": _effect(change)})
            metrics[f"{task.replace(' ', '_')}: {name}"] = change
    checks = {}
    for row, key in (("without memory", "no_memory_raises_reread_loss"), ("swap (control)", "swap_raises_reread_loss")):
        change = metrics.get(f"prose_reread: {row}")
        checks[key] = change is not None and change.above(0.0)
    notes = [] if "without memory" in measured else ["this config has no memory to switch off: the rule cannot hold"]
    return Result(
        name="memory_ablation", title="4. Memory ablation", claim=CLAIM, pass_rule=RULE, passed=all(checks.values()),
        seeds={"data": seed, "bootstrap": seed}, n_sequences=n_sequences, metrics=metrics,
        tables={"ablation": rows}, checks=checks,
        settings={"gap": gap, "recall_spread": spread, "passkey_distance": distance, "window": model.config.attention_window,
                  "reach": local_reach(model.config), "prose": prose.source, "ablation_off": base.names_off()},
        notes=notes, runtime_s=time.perf_counter() - started)
