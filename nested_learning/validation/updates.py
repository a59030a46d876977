"""Property 1: memories update at inference, each on its own cadence, and no parameter changes.

The model reads T tokens in many calls with the state carried, and after every call each fast weight
is compared with its value before: the memory M of every layer, the self-modifying projection memories
and every CMS level. A component must change in every call that holds one of its scheduled positions
and in no other call; the schedule comes from the config alone. Calls are one token long over the
first 2 x (longest CMS period) tokens; after that the stream is cut just before and after every
memory-chunk boundary, which isolates the slow projection writes without paying one call per token
(a one-token call costs as much as a 64-token one: it is dispatch-bound).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from ..state import HopeState
from . import data
from .measure import FULL, changed_parameters, parameter_snapshot, score
from .stats import Result, bootstrap, exact

TOLERANCE = 1e-4  # fp32 relative error the chunked kernels are held to against their per-token oracles

CLAIM = ("At inference every memory writes its fast weights on the cadence its config states (the memory M every "
         "token, the self-modifying projections once per chunk, CMS level j once every period_j tokens), the "
         "token clock runs across calls, and no learned parameter changes.")
RULE = ("The stream is read in calls (one token each at first, then cut around every chunk boundary; with CMS "
        "levels learning from the next-token loss, calls of the shortest period, where their gradient is cut "
        "anyway). PASS "
        "when, in every layer, each component changes in exactly the calls that hold one of its scheduled "
        "positions p: every p for M, (p+1) % memory_chunk_size == 0 for the projection memories, (p+1) % period_j "
        "== 0 for CMS level j (a CMS level may skip stream position 0: its first token has no previous input "
        "to learn from); with test-time updates off nothing changes; the state after all these calls equals the "
        f"state after one call over the same tokens (max relative difference < {TOLERANCE:g}); and every parameter is "
        "bit-identical afterwards.")


@dataclass(frozen=True)
class Component:
    layer: int
    name: str  # "memory", "projections" or "cms.<j>"
    period: int  # tokens between writes
    exempt_first: bool  # position 0 may stay unchanged
    read: Callable[[HopeState], torch.Tensor]  # the fast weight, [B, ...]

    def scheduled(self, position: int) -> bool:
        return (position + 1) % self.period == 0


def components(model: HopeTransformer) -> list[Component]:
    config, out = model.config, []
    for i in range(config.n_layers):
        if config.memory:
            out.append(Component(i, "memory", 1, False, lambda s, i=i: s.layers[i].memory.memory))
            if config.self_modifying:
                out.append(Component(i, "projections", config.memory_chunk_size, False,
                                     lambda s, i=i: torch.cat([s.layers[i].memory.projections.w_in.flatten(1),
                                                               s.layers[i].memory.projections.w_out.flatten(1)], 1)))
        for j, period in enumerate(config.cms_periods):
            out.append(Component(i, f"cms.{j}", period, True, lambda s, i=i, j=j: s.layers[i].cms[j].memory))
    return out


def default_length(model: HopeTransformer) -> int:
    """Long enough for every component to write at least twice."""
    config = model.config
    longest = max([config.memory_chunk_size if config.memory and config.self_modifying else 1, *config.cms_periods, 8])
    return 2 * longest


def call_plan(model: HopeTransformer, length: int) -> list[range]:
    """Consecutive segments covering [0, length): single tokens first, then cuts around chunk boundaries;
    for CMS levels learning from the next-token loss, blocks of the shortest period (a call edge cuts
    their gradient, so only calls ending on those edges equal one call: docs/model-options.md)."""
    config = model.config
    if config.cms_objective == "lm" and config.cms_periods:
        edges = sorted(set(range(0, length, min(config.cms_periods))) | {length})
        return [range(a, b) for a, b in zip(edges, edges[1:])]
    single = min(length, 2 * max([*config.cms_periods, 8]))
    cuts = set(range(single + 1))
    chunk = config.memory_chunk_size
    for p in range(single, length):
        if (p + 1) % chunk == 0:  # a chunk's last token: alone in its call
            cuts.update((p, p + 1))
    cuts = sorted(c for c in cuts | {length} if c <= length)
    return [range(a, b) for a, b in zip(cuts, cuts[1:])]


def _rows_changed(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    return (before != after).flatten(1).any(1).cpu()  # [B] bool


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def run(model: HopeTransformer, n_sequences: int = 4, length: int | None = None, seed: int = 0,
        base: Ablation = FULL) -> Result:
    started = time.perf_counter()
    length = length or default_length(model)
    tokens = data.random_text(n_sequences, length, seed).tokens.to(model.device)
    parts, plan = components(model), call_plan(model, length)
    snapshot = parameter_snapshot(model)
    changed = torch.zeros(len(parts), len(plan), n_sequences, dtype=torch.bool)  # [component, call, sequence]
    # score() gives a model whose CMS levels learn from the next-token loss the next tokens, each call's
    # last one the token after it, as a recording does.
    state = model.init_state(n_sequences)
    for s, segment in enumerate(plan):
        following = tokens[:, segment.stop] if segment.stop < length else None
        new = score(model, tokens[:, segment.start:segment.stop], state=state, ablation=base, following=following).state
        for c, part in enumerate(parts):
            changed[c, s] = _rows_changed(part.read(state), part.read(new))
        state = new
    single = score(model, tokens, ablation=base).state
    frozen = score(model, tokens, ablation=base.replace(test_time_updates=False)).state
    initial = model.init_state(n_sequences)
    stream_error = max((_relative_difference(part.read(state), part.read(single)) for part in parts), default=0.0)
    changes_when_off = [int(_rows_changed(part.read(initial), part.read(frozen)).sum()) for part in parts]
    params_changed = changed_parameters(model, snapshot)

    # A call is scheduled for a component when it holds a scheduled position, required when it must write.
    schedule = torch.tensor([[any(part.scheduled(p) for p in segment) for segment in plan] for part in parts],
                            dtype=torch.bool).view(len(parts), len(plan))
    required = torch.tensor([[any(part.scheduled(p) and (p > 0 or not part.exempt_first) for p in segment)
                              for segment in plan] for part in parts], dtype=torch.bool).view(len(parts), len(plan))
    observed_required = (changed & required[..., None]).flatten(0, 1).sum(0).float()  # [B]
    off_schedule = (changed & ~schedule[..., None]).flatten(0, 1).sum(0).float()  # [B]
    n_required = int(required.sum())
    fraction = observed_required / max(n_required, 1)

    metrics = {
        "scheduled_writes_observed": bootstrap(fraction.numpy(), seed),
        "off_schedule_writes": bootstrap(off_schedule.numpy(), seed),
        "writes_with_updates_off": exact(sum(changes_when_off), n_sequences),
        "stream_vs_single_call_relative_difference": exact(stream_error, n_sequences),
        "parameters_changed": exact(len(params_changed), 1),
    }
    checks = {
        "every_scheduled_write_happens": bool(n_required > 0 and (observed_required == n_required).all()),
        "no_write_off_schedule": bool((off_schedule == 0).all()),
        "nothing_changes_with_updates_off": sum(changes_when_off) == 0,
        "token_clock_runs_across_calls": stream_error < TOLERANCE,
        "parameters_bit_identical": not params_changed,
    }
    per_component = []
    for c, part in enumerate(parts):
        per_component.append({
            "layer": part.layer, "component": part.name, "period": part.period,
            "scheduled_positions": sum(part.scheduled(p) for p in range(length)),
            "calls_that_must_write": int(required[c].sum()),
            "calls_that_wrote": float(changed[c].sum(0).float().mean()),
            "calls_that_wrote_off_schedule": float((changed[c] & ~schedule[c, :, None]).sum(0).float().mean()),
            "writes_with_updates_off": changes_when_off[c]})
    # Calls of sequence 0 in which each component wrote: [first, last] token of the call.
    events = [{"layer": part.layer, "component": part.name, "first_token": plan[s].start, "last_token": plan[s].stop - 1}
              for c, part in enumerate(parts) for s in range(len(plan)) if changed[c, s, 0]]
    notes = [] if parts else ["this config has no test-time memory: nothing can update"]
    if params_changed:
        notes.append("parameters changed: " + ", ".join(params_changed[:5]))
    return Result(
        name="memory_updates", title="1. Memory updates at inference", claim=CLAIM, pass_rule=RULE,
        passed=all(checks.values()), seeds={"data": seed, "bootstrap": seed}, n_sequences=n_sequences,
        metrics=metrics, tables={"per_component": per_component, "writes_sequence_0": events}, checks=checks,
        settings={"tokens": length, "calls": [[r.start, r.stop] for r in plan], "ablation_off": base.names_off()}, notes=notes,
        runtime_s=time.perf_counter() - started)
