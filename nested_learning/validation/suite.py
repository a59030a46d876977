"""run_suite(): every experiment with the default (report) or quick (test) settings.

Default settings are sized to finish within two minutes on a 2-core CPU for the 4-layer, d_model-256
model: batches of 100 equal-length sequences, one forward call per condition. ``--quick`` keeps
every code path and shrinks every count, for tests and smoke runs; its numbers prove nothing.
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
from . import association, exactness, memory_ablation, persistence, repetition, updates
from .measure import FULL, changed_parameters, parameter_snapshot
from .stats import Result


@dataclass(frozen=True)
class SuiteSettings:
    updates_sequences: int = 4
    updates_tokens: int | None = None  # None: 2 x the slowest cadence of the config
    repetition_sequences: int = 100
    repetition_length: int = 32
    repetition_readings: int = 3
    association_sequences: int = 100  # per pair count
    association_pairs: tuple[int, ...] = (2, 6, 12)
    ablation_sequences: int = 100
    ablation_tokens: int = 96
    swap_pairs: int = 8
    persistence_sequences: int = 100  # per distance
    persistence_window: int = 16  # 4 layers reach 60 tokens back: distances 48 and 144 put the key beyond
    persistence_distractors: tuple[int, ...] = (0, 48, 144)
    exactness_trials: int = 20
    exactness_key_dim: int = 64

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


DEFAULT = SuiteSettings()
QUICK = SuiteSettings(updates_sequences=2, repetition_sequences=8, repetition_length=12, repetition_readings=3,
                      association_sequences=8, association_pairs=(2, 4), ablation_sequences=8, ablation_tokens=64,
                      swap_pairs=4, persistence_sequences=8, persistence_window=8, persistence_distractors=(0, 40),
                      exactness_trials=4, exactness_key_dim=16)

Experiment = Callable[[HopeTransformer, SuiteSettings, int, Ablation], Result]

EXPERIMENTS: dict[str, Experiment] = {
    "memory_updates": lambda m, s, seed, base: updates.run(m, s.updates_sequences, s.updates_tokens, seed, base),
    "repetition_learning": lambda m, s, seed, base: repetition.run(
        m, s.repetition_sequences, s.repetition_length, s.repetition_readings, seed, base),
    "in_context_association": lambda m, s, seed, base: association.run(
        m, s.association_sequences, s.association_pairs, seed, base),
    "memory_ablation": lambda m, s, seed, base: memory_ablation.run(
        m, s.ablation_sequences, s.ablation_tokens, s.swap_pairs, seed, base),
    "long_range_persistence": lambda m, s, seed, base: persistence.run(
        m, s.persistence_sequences, s.persistence_window, s.persistence_distractors, seed, base),
    "module_exactness": lambda m, s, seed, base: exactness.run(s.exactness_trials, s.exactness_key_dim, seed),
}


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


def run_suite(model: HopeTransformer, quick: bool = False, progress: Callable[[float, str], None] | None = None,
              seed: int = 0, only: str | list[str] | None = None, settings: SuiteSettings | None = None,
              base: Ablation = FULL) -> list[Result]:
    """Run the experiments on ``model`` and return one :class:`Result` each (``Result.to_dict()`` for JSON).

    ``progress(fraction_done, message)`` is called before each experiment and once at the end.
    ``base`` switches components off for every condition (a control: e.g. memory off cannot pass)."""
    names = parse_only(only)
    settings = settings or (QUICK if quick else DEFAULT)
    model = model.eval()
    snapshot = parameter_snapshot(model)
    results = []
    for i, name in enumerate(names):
        if progress is not None:
            progress(i / len(names), f"running {name} ({i + 1}/{len(names)})")
        results.append(EXPERIMENTS[name](model, settings, seed, base))
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


def run_metadata(model: HopeTransformer, quick: bool, seed: int, settings: SuiteSettings, source: str,
                 wall_s: float) -> dict:
    """What a report needs to be reproduced: model, settings, machine, time."""
    return {"source": source, "config": model.config.to_dict(),
            "checkpoint_metadata": getattr(model, "checkpoint_metadata", None),
            "parameters": sum(p.numel() for p in model.parameters()),
            "settings": "quick" if quick else "default", "seed": seed, "suite_settings": settings.to_dict(),
            "wall_time_s": wall_s, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "device": str(model.device), "python": platform.python_version(),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
