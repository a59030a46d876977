"""Module-level exactness: the delta rule recalls orthonormal keys exactly.

With unit keys and learning rate 1, a delta-rule write ``W <- W + (v - W k) k^T`` sets ``W k = v``
and leaves every direction orthogonal to k alone, so N <= d orthonormal pairs are all recalled
exactly. Checked on ``AssociativeMemory`` and on the kernel the model runs, called as the self-modifying
memory calls it (``ops.gated_delta_chunk`` once per chunk, heads folded, the gate's M k handed in, its
retention floor; learning rate 1, retention 1), with values as many times narrower than keys as in the
shipped memory (128 x 1,024: ``key_expansion`` 8). Controls show the measurement can see failure:
Hebbian writes with correlated keys interfere (crosstalk), and 2d random keys overfill a d x d memory.
"""
from __future__ import annotations

import math
import time

import torch

from ..config import HopeConfig
from ..memories.associative import AssociativeMemory
from ..ops import gated_delta_chunk
from .stats import Result, bootstrap

TOLERANCE = 1e-4  # fp32 relative error
CROSSTALK = 1e-2  # relative error the Hebbian control must show for the measurement to be informative
KERNEL_CHUNK = 16  # memory_chunk_size of a model calling it: N = d keys cross several chunk boundaries
SHIPPED = HopeConfig.preset("hope")  # the kernel case takes its value width and retention floor from it

CLAIM = ("A delta-rule memory stores N <= d pairs with orthonormal keys exactly (recall error at fp32 rounding), "
         "in the standalone AssociativeMemory and in the chunked kernel the model runs.")
RULE = (f"PASS when the relative recall error ||read(K) - V|| / ||V|| is below {TOLERANCE:g} in every trial for "
        "both the AssociativeMemory delta rule and the gated_delta_chunk kernel (orthonormal keys, N = d) AND the "
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
    """Write the pairs with ``gated_delta_chunk`` as SelfModifyingMemory calls it, then read every key."""
    n = keys.shape[0]
    k, v = keys[None], values[None]  # [N = B H = 1, n, dk], [1, n, dv]
    memory = torch.zeros(1, values.shape[1], keys.shape[1])  # [N, dv, dk]
    floor = math.log(SHIPPED.min_retention)
    for a in range(0, n, KERNEL_CHUNK):
        kc, vc = k[:, a:a + KERNEL_CHUNK], v[:, a:a + KERNEL_CHUNK]
        memory_keys = torch.bmm(kc, memory.transpose(1, 2))  # the gate's M k at the chunk start, reused
        ones = torch.ones(kc.shape[:2])
        memory = gated_delta_chunk(kc, kc, vc, ones, torch.zeros_like(ones), memory, memory_keys,
                                   log_retention_floor=floor).memory
    return _relative_error(keys @ memory[0].T, values)


def run(trials: int = 20, key_dim: int = 64, seed: int = 0) -> Result:
    started = time.perf_counter()
    cases = {"delta, AssociativeMemory, orthonormal keys (N = d)": [],
             "delta, gated_delta_chunk kernel as the model calls it, orthonormal keys (N = d)": [],
             "hebbian, AssociativeMemory, orthonormal keys (N = d)": [],
             "hebbian, AssociativeMemory, correlated keys (N = d/2)": [],
             "delta, AssociativeMemory, random keys over capacity (N = 2d)": []}
    names = list(cases)
    for trial in range(trials):
        generator = torch.Generator().manual_seed(seed * 100_003 + trial)
        keys = _orthonormal(key_dim, generator)
        values = torch.randn(key_dim, key_dim, generator=generator)
        cases[names[0]].append(_associative("delta", keys, values))
        cases[names[1]].append(_kernel(keys, values[:, :max(1, key_dim // SHIPPED.key_expansion)]))
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
        settings={"trials": trials, "key_dim": key_dim, "kernel_chunk": KERNEL_CHUNK,
                  "kernel_value_dim": max(1, key_dim // SHIPPED.key_expansion)},
        notes=["n_sequences counts independent trials (a fresh key and value set each)"],
        runtime_s=time.perf_counter() - started)
