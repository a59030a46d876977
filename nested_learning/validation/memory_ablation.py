"""Property 4: memory ablation. Each component off in turn on the same held-out sequences, plus a
control that gives each document the memory state of another document.

Held-out data: whole samples of the three training tasks packed into fixed-length windows, from
seeds the training never draws (see data.py). Loss is the mean next-byte loss over every byte;
recall is the argmax accuracy on the answer bytes. Differences are paired per sequence.

Swapped-state control: recall sequences are read in two calls, the key-value pairs and then the
queries. Before the second call the memory state (memory, projections and every CMS level) of each
row is replaced by the state another row wrote, while the attention cache, the conv history and the
token clock stay the row's own. If the memory holds what this document said, the swap must hurt;
a memory that only adapts to generic statistics would not care whose state it gets.
"""
from __future__ import annotations

import dataclasses
import time

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from ..state import HopeState, LayerState, map_tensors
from . import data
from .measure import FULL, masked_mean, score
from .stats import Result, bootstrap, paired_difference

CLAIM = ("The test-time memory carries information specific to the document being read and the model uses it: "
         "freezing the memory's writes raises held-out loss, and a memory state written by another document "
         "makes the queries' answers worse than the document's own state.")
RULE = ("PASS when the per-sequence increase in held-out loss with test-time updates off has a 95% bootstrap "
        "interval entirely above zero AND the per-sequence increase in answer loss with the swapped memory state "
        "(swapped - own) has an interval entirely above zero. The other components' effects are reported, not judged.")


def components(model: HopeTransformer, base: Ablation = FULL) -> dict[str, Ablation]:
    """One ablation per component this config has (and ``base`` leaves on), each switching it off alone."""
    c = model.config
    memory, cms = c.memory and base.memory, bool(c.cms_periods) and base.cms  # what runs at all
    attention = c.attention and base.attention
    present = {"attention": attention, "memory": memory, "cms": cms,
               "persistent_tokens": attention and c.n_persistent_tokens > 0, "ffn": c.ffn,
               "test_time_updates": memory or cms, "momentum": memory and c.momentum, "retention": memory or cms,
               "self_modification": memory and c.self_modifying, "adaptive_lr": memory}
    out = {}
    for name in Ablation.SWITCHES:
        if present[name] and getattr(base, name):
            out[name] = base.replace(**{name: False})
        if name == "cms" and cms:
            for j in range(len(c.cms_periods)):
                if base.cms_level(j):
                    out[f"cms.{j}"] = base.replace(cms_levels_off=base.cms_levels_off | {j})
    return out


def replace_memory(state: HopeState, source: HopeState, rows: torch.Tensor | None = None) -> HopeState:
    """``state`` with its memory and CMS weights taken from ``source`` (row ``rows[b]`` for row b).

    The attention cache, the conv history, each CMS level's previous input and the clock stay
    ``state``'s own: they hold the recent tokens, not learned memory."""
    pick = (lambda t: t[rows]) if rows is not None else (lambda t: t)
    layers = []
    for own, other in zip(state.layers, source.layers):
        memory = own.memory
        if own.memory is not None:
            memory = dataclasses.replace(map_tensors(other.memory, pick), conv=own.memory.conv)
        cms = [dataclasses.replace(map_tensors(theirs, pick), previous_input=mine.previous_input)
               for mine, theirs in zip(own.cms, other.cms)]
        layers.append(LayerState(own.attention, memory, cms))
    return HopeState(state.position, layers)


def _swap_control(model: HopeTransformer, n_sequences: int, n_pairs: int, seed: int, base: Ablation):
    batch, answers, split = data.recall(n_sequences, n_pairs, seed)
    pairs, queries, answers = batch.tokens[:, :split], batch.tokens[:, split:], answers[split:]
    written = score(model, pairs, ablation=base).state
    derangement = torch.roll(torch.arange(n_sequences), 1)  # row b gets row b-1's memory: never its own
    states = {"own": written,
              "swapped": replace_memory(written, written, derangement.to(model.device)),
              "initial": replace_memory(written, model.init_state(n_sequences))}
    loss, accuracy = {}, {}
    for name, state in states.items():
        scores = score(model, queries, state=state, ablation=base)
        loss[name], accuracy[name] = masked_mean(scores.loss, answers), masked_mean(scores.correct, answers)
    return loss, accuracy, batch.texts[0]


def run(model: HopeTransformer, n_sequences: int = 100, length: int = 128, swap_pairs: int = 8, seed: int = 0,
        base: Ablation = FULL) -> Result:
    started = time.perf_counter()
    if n_sequences < 2:
        raise ValueError("the swapped-state control needs at least 2 sequences")
    batch, answers = data.heldout_tasks(n_sequences, length, seed)
    every_byte = torch.ones(length, dtype=torch.bool)
    loss, recall = {}, {}
    for name, ablation in {"full": base, **components(model, base)}.items():
        scores = score(model, batch.tokens, ablation=ablation)
        loss[name], recall[name] = masked_mean(scores.loss, every_byte), masked_mean(scores.correct, answers)

    rows = []
    for name in loss:
        if name == "full":
            continue
        d_loss, d_recall = paired_difference(loss[name], loss["full"], seed), paired_difference(recall[name], recall["full"], seed)
        rows.append({"component_off": name, **bootstrap(loss[name], seed).columns("loss"),
                     **d_loss.columns("loss_change"), **bootstrap(recall[name], seed).columns("recall"),
                     **d_recall.columns("recall_change"),
                     "effect": "hurts" if d_loss.above(0) else "helps" if d_loss.below(0) else "no clear effect"})
    swap_loss, swap_accuracy, example = _swap_control(model, n_sequences, swap_pairs, seed, base)
    swap_rows = [{"memory_state": name, **bootstrap(swap_loss[name], seed).columns("answer_loss"),
                  **bootstrap(swap_accuracy[name], seed).columns("accuracy")} for name in swap_loss]

    metrics = {"loss_full": bootstrap(loss["full"], seed), "recall_full": bootstrap(recall["full"], seed)}
    if "test_time_updates" in loss:
        metrics["loss_change_updates_off"] = paired_difference(loss["test_time_updates"], loss["full"], seed)
        metrics["recall_change_updates_off"] = paired_difference(recall["test_time_updates"], recall["full"], seed)
    swap_cost = paired_difference(swap_loss["swapped"], swap_loss["own"], seed)
    metrics.update({"answer_loss_swapped_minus_own": swap_cost,
                    "accuracy_swapped_minus_own": paired_difference(swap_accuracy["swapped"], swap_accuracy["own"], seed),
                    "answer_loss_initial_minus_own": paired_difference(swap_loss["initial"], swap_loss["own"], seed)})
    updates_off = metrics.get("loss_change_updates_off")
    checks = {"updates_off_raises_loss": updates_off is not None and updates_off.above(0.0),
              "swapped_state_raises_answer_loss": swap_cost.above(0.0)}
    notes = [] if "test_time_updates" in loss else ["this config has no test-time memory"]
    return Result(
        name="memory_ablation", title="4. Memory ablation", claim=CLAIM, pass_rule=RULE, passed=all(checks.values()),
        seeds={"data": seed, "bootstrap": seed}, n_sequences=n_sequences, metrics=metrics,
        tables={"components": rows, "swapped_state": swap_rows}, checks=checks,
        settings={"tokens": length, "swap_pairs": swap_pairs, "swap_example": example,
                  "heldout_example": batch.texts[0], "ablation_off": base.names_off()},
        notes=notes, runtime_s=time.perf_counter() - started)
