"""Bootstrap confidence intervals and the result record every experiment returns.

Intervals are percentile bootstraps over sequences (the unit that is sampled independently), with a
seeded generator so a rerun reproduces them exactly. Paired comparisons bootstrap the per-sequence
difference, which is what makes two conditions on the same sequences comparable at small n.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

N_BOOTSTRAP = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean over independent units with its 95% bootstrap interval."""
    mean: float
    ci_low: float
    ci_high: float
    n: int

    def above(self, value: float) -> bool:
        return self.ci_low > value

    def below(self, value: float) -> bool:
        return self.ci_high < value

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}

    def columns(self, prefix: str) -> dict[str, float]:
        """Flat table columns: ``prefix``, ``prefix_ci_low``, ``prefix_ci_high``."""
        return {prefix: self.mean, f"{prefix}_ci_low": self.ci_low, f"{prefix}_ci_high": self.ci_high}

    def text(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} [{self.ci_low:.{digits}f}, {self.ci_high:.{digits}f}]"


def _values(values) -> np.ndarray:
    array = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64).reshape(-1)
    return array[~np.isnan(array)]  # units without a measurement (e.g. no answer byte) do not count


def bootstrap(values, seed: int = 0, n_resamples: int = N_BOOTSTRAP) -> Estimate:
    """Mean of ``values`` (one per independent unit) with a percentile bootstrap 95% interval."""
    array = _values(values)
    if array.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(array.mean())
    if array.size == 1 or np.all(array == array[0]):  # no spread: the interval is the point
        return Estimate(mean, mean, mean, int(array.size))
    rng = np.random.default_rng(seed)
    resampled = array[rng.integers(0, array.size, size=(n_resamples, array.size))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Estimate(mean, float(min(low, mean)), float(max(high, mean)), int(array.size))


def paired_difference(a, b, seed: int = 0) -> Estimate:
    """Mean of ``a - b`` over the same units, with its bootstrap interval."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same number of units, got {a.size} and {b.size}")
    return bootstrap(a - b, seed)


def bootstrap_ratio(numerator, denominator, seed: int = 0, n_resamples: int = N_BOOTSTRAP) -> Estimate:
    """Ratio of means (e.g. loss on repetition 2 over repetition 1), resampling the units jointly."""
    num, den = np.asarray(numerator, dtype=np.float64).reshape(-1), np.asarray(denominator, dtype=np.float64).reshape(-1)
    if num.shape != den.shape or num.size == 0:
        raise ValueError("a ratio needs the same, non-zero number of units in numerator and denominator")
    point = float(num.mean() / den.mean())
    rng = np.random.default_rng(seed)
    index = rng.integers(0, num.size, size=(n_resamples, num.size))
    ratios = num[index].mean(axis=1) / den[index].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return Estimate(point, float(min(low, point)), float(max(high, point)), int(num.size))


def exact(value: float, n: int) -> Estimate:
    """A deterministic quantity (a count, a maximum error): its interval is the value itself."""
    return Estimate(float(value), float(value), float(value), int(n))


@dataclass
class Result:
    """One property's measurement: what was claimed, the rule, the verdict and the numbers behind it.

    ``tables`` hold per-condition rows (lists of flat dicts) ready for a DataFrame / plot."""
    name: str
    title: str
    claim: str
    pass_rule: str
    passed: bool
    seeds: dict[str, Any]
    n_sequences: int
    metrics: dict[str, Estimate]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)  # each clause of the pass rule, by name
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runtime_s: float = 0.0
    judged: bool = True  # False: a measurement reported without a pass rule (``passed`` is then False)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL" if self.judged else "REPORTED"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = {k: v.to_dict() for k, v in self.metrics.items()}
        return _finite_or_none(json.loads(json.dumps(out, default=_json_default)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        data = dict(data)
        data["metrics"] = {k: Estimate(*(math.nan if v[f] is None else v[f] for f in ("mean", "ci_low", "ci_high")), v["n"])
                           for k, v in data["metrics"].items()}
        return cls(**data)


def _finite_or_none(value):
    """NaN / inf -> None, so the file is strict JSON that any dashboard or browser parses."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
