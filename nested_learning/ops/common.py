"""Small numerical helpers shared by the memory kernels.

Axis glossary used throughout ``nested_learning.ops`` (and the shape contracts, ``shape_check.py``):
    B batch, H heads, T tokens, C tokens in one chunk, N = B H (batch and heads folded),
    dk key width, dv value width.
A memory matrix ``M`` has shape [B, H, dv, dk] and maps a key to a value: ``v = M @ k``. Keys may be
wider than values: the shipped memory is 128 x 1,024 (dv = 128, keys widened 8x by DPFP to dk = 1,024).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .shape_check import shapes

HALF_TYPES = (torch.float16, torch.bfloat16)


def float32_kernel(kernel):
    """Run a memory kernel in float32 with autocast off, whatever the caller's precision.

    Fast weights sum many small writes (bf16 rounds most of them away) and CUDA has no bf16
    triangular solve, so under mixed precision only the surrounding projections run in bf16.
    Half-precision tensor arguments are upcast; results come back in float32."""
    @functools.wraps(kernel)
    def run(*args, **kwargs):
        device_type = next(a for a in args if isinstance(a, torch.Tensor)).device.type
        upcast = lambda x: x.float() if isinstance(x, torch.Tensor) and x.dtype in HALF_TYPES else x
        args, kwargs = [upcast(a) for a in args], {name: upcast(a) for name, a in kwargs.items()}
        if not torch.is_autocast_enabled(device_type):
            return kernel(*args, **kwargs)
        with torch.autocast(device_type, enabled=False):
            return kernel(*args, **kwargs)
    return run


def last_axis_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """||x|| over the last axis, kept as a size-1 axis and floored at ``eps``: l2norm's divisor."""
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)


@shapes(x="... d", returns="... d")
def l2norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Normalise the last axis to unit length (keys and queries of every memory). F.normalize's
    own arithmetic, without its Python wrappers (called once per chunk, dispatch-bound)."""
    return x / last_axis_norm(x, eps)


@shapes(x="... d", returns="... features")
def dpfp(x: torch.Tensor, nu: int) -> torch.Tensor:
    """Deterministic parameter-free projection (Schlag et al. 2021, "Linear Transformers Are Secretly
    Fast Weight Programmers"): r = relu([x, -x]), features r_i r_{i+j} for j = 1..nu, width 2 nu d.

    Sparse, non-negative and nonlinear, so keys built from different contexts overlap less than the
    contexts themselves: a delta-rule memory keyed by them holds more associations (its capacity is
    its key width, and a linear map to a wider space would not raise the keys' rank)."""
    r = torch.cat([F.relu(x), F.relu(-x)], dim=-1)
    return torch.cat([r * r.roll(j, dims=-1) for j in range(1, nu + 1)], dim=-1)


@shapes(unit="... d", returns="... dk")
def key_feature_map(unit: torch.Tensor, key_expansion: int) -> torch.Tensor:
    """phi of the memory's unit keys and queries [..., d] -> [..., key_expansion d]: l2norm . DPFP (nu =
    key_expansion / 2), the identity for 1. Parameter-free: a recording keeps unit keys, rebuilds phi(k) here."""
    return l2norm(dpfp(unit, key_expansion // 2)) if key_expansion > 1 else unit


@shapes(log_gate="... C", returns="... C C")
def segment_sum(log_gate: torch.Tensor) -> torch.Tensor:
    """``out[..., t, s] = sum_{i=s+1..t} log_gate[..., i]`` for s <= t, ``-inf`` above the diagonal.

    Summing each segment directly (instead of subtracting two long cumulative sums) keeps the
    decay between nearby tokens exact even when the chunk's total log-decay is large.
    """
    C = log_gate.shape[-1]
    x = log_gate.unsqueeze(-1).expand(*log_gate.shape, C)  # x[..., i, s] = log_gate[i]
    strictly_lower = torch.ones(C, C, dtype=torch.bool, device=log_gate.device).tril(-1)
    x = torch.where(strictly_lower, x, torch.zeros((), dtype=x.dtype, device=x.device))
    out = x.cumsum(dim=-2)
    lower = torch.ones(C, C, dtype=torch.bool, device=log_gate.device).tril()
    return torch.where(lower, out, torch.full((), float("-inf"), dtype=out.dtype, device=out.device))


def solve_unit_lower(system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``system^-1 @ rhs`` for a unit lower-triangular ``system`` [N, C, C] (its diagonal and upper
    part are never read) and ``rhs`` [N, C, R]; the result is a transposed view.

    Solved as the equivalent right-hand problem ``X system^T = rhs^T``: LAPACK is column-major, so
    this form needs no layout copies (faster on CPU for wide right-hand sides: docs/performance.md)."""
    return torch.linalg.solve_triangular(system.transpose(-1, -2), rhs.transpose(-1, -2), upper=True,
                                         left=False, unitriangular=True).transpose(-1, -2)


def cat_tokens(pieces: list[torch.Tensor], dim: int = 2) -> torch.Tensor:
    """torch.cat that does not copy a single piece (the common one-run case)."""
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=dim)
