"""Module-level exactness: the delta rule recalls orthonormal keys exactly.

With unit keys and learning rate 1, a delta-rule write ``W <- W + (v - W k) k^T`` sets ``W k = v``
and leaves every direction orthogonal to k alone, so N <= d orthonormal pairs are all recalled
exactly. Checked on ``AssociativeMemory`` and on the chunked kernel the model runs
(``ops.gated_delta_rule``, learning rate 1, retention 1). Controls show the measurement can see
failure: Hebbian writes with correlated keys interfere (crosstalk), and 2d random keys overfill a
d x d memory.
"""
from __future__ import annotations

import time

import torch

from ..memories.associative import AssociativeMemory
from ..ops import gated_delta_rule
from .stats import Result, bootstrap

TOLERANCE = 1e-4  # fp32 relative error
CROSSTALK = 1e-2  # relative error the Hebbian control must show for the measurement to be informative
KERNEL_CHUNK = 16

CLAIM = ("A delta-rule memory stores N <= d pairs with orthonormal keys exactly (recall error at fp32 rounding), "
         "in the standalone AssociativeMemory and in the chunked kernel the model runs.")
RULE = (f"PASS when the relative recall error ||read(K) - V|| / ||V|| is below {TOLERANCE:g} in every trial for "
        "both the AssociativeMemory delta rule and the gated_delta_rule kernel (orthonormal keys, N = d) AND the "
        f"Hebbian control with correlated keys shows crosstalk above {CROSSTALK:g} in every trial.")


def _relative_error(read: torch.Tensor, values: torch.Tensor) -> float:
    return float((read - values).norm() / values.norm())


def _orthonormal(d: int, generator: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    return q.T.float().contiguous()  # rows are orthonormal keys


def _correlated(n: int, d: int, generator: torch.Generator) -> torch.Tensor:
    shared = torch.randn(d, generator=generator)
    return torch.nn.functional.normalize(shared + 0.5 * torch.randn(n, d, generator=generator), dim=-1)


def _associative(rule: str, keys: torch.Tensor, values: torch.Tensor) -> float:
    memory = AssociativeMemory(keys.shape[1], values.shape[1], rule=rule)
    memory.write(keys, values)
    return _relative_error(memory.read(keys), values)


def _kernel(keys: torch.Tensor, values: torch.Tensor) -> float:
    n, d = keys.shape
    k, v = keys[None, None], values[None, None]  # [B=1, H=1, N, d]
    ones = torch.ones(1, 1, n)
    result = gated_delta_rule(k, k, v, ones, torch.zeros(1, 1, n), torch.zeros(1, 1, values.shape[1], d), KERNEL_CHUNK)
    return _relative_error(keys @ result.memory[0, 0].T, values)


def run(trials: int = 20, key_dim: int = 64, seed: int = 0) -> Result:
    started = time.perf_counter()
    cases = {"delta, AssociativeMemory, orthonormal keys (N = d)": [],
             "delta, gated_delta_rule kernel, orthonormal keys (N = d)": [],
             "hebbian, AssociativeMemory, orthonormal keys (N = d)": [],
             "hebbian, AssociativeMemory, correlated keys (N = d/2)": [],
             "delta, AssociativeMemory, random keys over capacity (N = 2d)": []}
    names = list(cases)
    for trial in range(trials):
        generator = torch.Generator().manual_seed(seed * 100_003 + trial)
        keys = _orthonormal(key_dim, generator)
        values = torch.randn(key_dim, key_dim, generator=generator)
        cases[names[0]].append(_associative("delta", keys, values))
        cases[names[1]].append(_kernel(keys, values))
        cases[names[2]].append(_associative("hebbian", keys, values))
        correlated = _correlated(key_dim // 2, key_dim, generator)
        cases[names[3]].append(_associative("hebbian", correlated, values[:key_dim // 2]))
        crowded = torch.nn.functional.normalize(torch.randn(2 * key_dim, key_dim, generator=generator), dim=-1)
        cases[names[4]].append(_associative("delta", crowded, torch.randn(2 * key_dim, key_dim, generator=generator)))

    estimates = {name: bootstrap(errors, seed) for name, errors in cases.items()}
    worst = {name: max(errors) for name, errors in cases.items()}
    checks = {"delta_rule_exact": worst[names[0]] < TOLERANCE,
              "model_kernel_exact": worst[names[1]] < TOLERANCE,
              "hebbian_control_shows_crosstalk": min(cases[names[3]]) > CROSSTALK}
    metrics = {"relative_error_delta_associative": estimates[names[0]],
               "relative_error_delta_kernel": estimates[names[1]],
               "relative_error_hebbian_correlated": estimates[names[3]],
               "relative_error_delta_over_capacity": estimates[names[4]]}
    rows = [{"case": name, **estimates[name].columns("relative_error"), "max_relative_error": worst[name]}
            for name in names]
    return Result(
        name="module_exactness", title="Module exactness: delta-rule recall", claim=CLAIM, pass_rule=RULE,
        passed=all(checks.values()), seeds={"keys_and_values": seed, "bootstrap": seed}, n_sequences=trials,
        metrics=metrics, tables={"recall_error": rows}, checks=checks,
        settings={"trials": trials, "key_dim": key_dim, "kernel_chunk": KERNEL_CHUNK},
        notes=["n_sequences counts independent trials (a fresh key and value set each)"],
        runtime_s=time.perf_counter() - started)
