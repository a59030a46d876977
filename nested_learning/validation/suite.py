"""run_suite(): every experiment with the default (report) or quick (test) settings.

Default settings are sized to finish within five minutes on a 2-core CPU for the default model:
batches of equal-length sequences, one forward call per condition (calls of at most 2,048 tokens).
``--quick`` keeps every code path and shrinks every count, for tests and smoke runs; its numbers
prove nothing. Prose properties read held-out prose (prose.py); the baseline, when given, runs on the
same rows.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..ablation import Ablation
from ..model import HopeTransformer
from . import association, exactness, gating, memory_ablation, persistence, position, repetition, updates
from .measure import FULL, changed_parameters, local_reach, parameter_snapshot
from .prose import HeldoutProse
from .stats import Result


@dataclass(frozen=True)
class SuiteSettings:
    updates_sequences: int = 4
    updates_tokens: int | None = None  # None: 2 x the slowest cadence of the config
    repetition_sequences: int = 32
    repetition_length: int = 128
    repetition_gaps: tuple[int, ...] = (100, 250, 500, 1000)
    association_sequences: int = 32
    association_pairs: int = 16
    association_spread: int = 48  # pairs 54 tokens apart: beyond the default model's reach of 36
    ablation_sequences: int = 24
    ablation_gap: int = 250
    ablation_passkey_distance: int = 1000
    persistence_sequences: int = 16  # per distance
    persistence_long_sequences: int = 8  # per distance from 4,096 tokens
    persistence_distances: tuple[int, ...] = (256, 1024, 2048, 4096, 8192)
    gating_sequences: int = 64
    gating_gaps: tuple[int, ...] = (100, 500)  # the gaps issue 27 measured layer 1's gating at
    position_windows: int = 8
    position_length: int = 16384
    exactness_trials: int = 20
    exactness_key_dim: int = 64

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


DEFAULT = SuiteSettings()
QUICK = SuiteSettings(updates_sequences=2, repetition_sequences=6, repetition_length=24, repetition_gaps=(40, 80),
                      association_sequences=6, association_pairs=4, association_spread=40, ablation_sequences=4,
                      ablation_gap=40, ablation_passkey_distance=60, persistence_sequences=4, persistence_long_sequences=2,
                      persistence_distances=(48, 600), gating_sequences=6, gating_gaps=(20, 40), position_windows=2,
                      position_length=300, exactness_trials=4, exactness_key_dim=16)


@dataclass
class Inputs:
    """What the prose properties read and compare against, shared by the experiments of one run."""
    prose: HeldoutProse
    baseline: HopeTransformer | None = None


Experiment = Callable[[HopeTransformer, SuiteSettings, int, Ablation, Inputs], Result]

EXPERIMENTS: dict[str, Experiment] = {
    "memory_updates": lambda m, s, seed, base, i: updates.run(m, s.updates_sequences, s.updates_tokens, seed, base),
    "repetition_learning": lambda m, s, seed, base, i: repetition.run(
        m, i.prose, s.repetition_sequences, s.repetition_length, s.repetition_gaps, seed, base, i.baseline),
    "in_context_association": lambda m, s, seed, base, i: association.run(
        m, i.prose, s.association_sequences, s.association_pairs, s.association_spread, seed, base, i.baseline),
    "memory_ablation": lambda m, s, seed, base, i: memory_ablation.run(
        m, i.prose, s.ablation_sequences, s.ablation_gap, s.association_spread, s.ablation_passkey_distance, seed, base),
    "long_range_persistence": lambda m, s, seed, base, i: persistence.run(
        m, i.prose, s.persistence_sequences, s.persistence_long_sequences, s.persistence_distances, seed=seed, base=base,
        baseline=i.baseline),
    "surprise_gating": lambda m, s, seed, base, i: gating.run(m, i.prose, s.gating_sequences, s.gating_gaps, seed=seed),
    "loss_by_position": lambda m, s, seed, base, i: position.run(
        m, i.prose, s.position_windows, s.position_length, seed, i.baseline),
    "module_exactness": lambda m, s, seed, base, i: exactness.run(s.exactness_trials, s.exactness_key_dim, seed),
}
NEEDS_PROSE = {"repetition_learning", "in_context_association", "memory_ablation", "long_range_persistence",
               "surprise_gating", "loss_by_position"}


def parse_only(names: str | list[str] | None) -> list[str]:
    """``"repetition_learning,memory_updates"`` -> names in suite order; unknown names raise ValueError."""
    if names is None:
        return list(EXPERIMENTS)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown or not names:
        raise ValueError(f"unknown experiment {unknown[0]!r}; choose from {', '.join(EXPERIMENTS)}" if unknown
                         else "no experiment named")
    return [n for n in EXPERIMENTS if n in names]


def heldout_fraction_of(model: HopeTransformer, default: float = 0.03) -> float:
    """The held-out share the checkpoint was trained with (its documents were never trained on)."""
    meta = model.checkpoint_metadata or {}
    value = (meta.get("train_config") or {}).get("heldout_fraction", meta.get("heldout_fraction", default))
    return value if isinstance(value, float) and 0.0 < value < 1.0 else default


def run_suite(model: HopeTransformer, quick: bool = False, progress: Callable[[float, str], None] | None = None,
              seed: int = 0, only: str | list[str] | None = None, settings: SuiteSettings | None = None,
              base: Ablation = FULL, prose: HeldoutProse | None = None,
              baseline: HopeTransformer | None = None) -> list[Result]:
    """Run the experiments on ``model`` and return one :class:`Result` each (``Result.to_dict()`` for JSON).

    ``progress(fraction_done, message)`` is called before each experiment and once at the end.
    ``base`` switches components off for every condition (a control: e.g. memory off cannot pass).
    ``prose``: held-out prose (default: the offline corpus's held-out split at the checkpoint's fraction);
    ``baseline``: the same-window transformer the prose properties compare against."""
    names = parse_only(only)
    settings = settings or (QUICK if quick else DEFAULT)
    model = model.eval()
    if baseline is not None:
        baseline = baseline.eval()
    if prose is None and NEEDS_PROSE.intersection(names):
        if progress is not None:
            progress(0.0, "building held-out prose (offline corpus)")
        prose = HeldoutProse(heldout_fraction=heldout_fraction_of(model))
    inputs = Inputs(prose, baseline)
    snapshot = parameter_snapshot(model)
    results = []
    for i, name in enumerate(names):
        if progress is not None:
            progress(i / len(names), f"running {name} ({i + 1}/{len(names)})")
        results.append(EXPERIMENTS[name](model, settings, seed, base, inputs))
    changed = changed_parameters(model, snapshot)
    for result in results:  # the whole suite is inference: not one parameter bit may have moved
        if result.name == "memory_updates":
            result.checks["parameters_bit_identical_after_suite"] = not changed
            result.passed = all(result.checks.values())
            if changed:
                result.notes.append("parameters changed during the suite: " + ", ".join(changed[:5]))
    if progress is not None:
        progress(1.0, "done")
    return results


# The commit of the pass rules in force (docs/validation.md). 946ad19 wrote properties 2-7 before the shipped
# checkpoint was trained; 912a522 (issue 27) gave property 6 its new control after it.
RULES_COMMIT = "912a522"


def run_metadata(model: HopeTransformer, quick: bool, seed: int, settings: SuiteSettings, source: str,
                 wall_s: float) -> dict:
    """What a report needs to be reproduced: model, settings, machine, time."""
    return {"source": source, "config": model.config.to_dict(), "rules_commit": RULES_COMMIT,
            "attention_window": model.config.attention_window if model.config.attention else None,
            "reach": local_reach(model.config),
            "checkpoint_metadata": model.checkpoint_metadata,
            "parameters": sum(p.numel() for p in model.parameters()),
            "settings": "quick" if quick else "default", "seed": seed, "suite_settings": settings.to_dict(),
            "wall_time_s": wall_s, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "device": str(model.device), "python": platform.python_version(),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
