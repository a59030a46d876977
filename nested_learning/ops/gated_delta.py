"""Gated delta rule (Hope eq 88), chunk-wise exact form and its per-token oracle.

Per head, with retention alpha_t in (0, 1] and learning rate eta_t:

    error_t = v_t - M_{t-1} k_t                     (its norm is the token's *surprise*)
    M_t     = alpha_t M_{t-1} + eta_t error_t k_t^T   ( = M_{t-1}(alpha_t I - eta_t k k^T) + eta_t v k^T )
    out_t   = M_t q_t                                 (read after the write: still causal)

Chunk-wise form (the UT transform). Inside a chunk write u_t = eta_t * error_t and
c_t = sum_{i<=t} log alpha_i. Then u solves a unit lower-triangular system

    u_t + eta_t sum_{s<t} e^{c_{t-1}-c_s} (k_t.k_s) u_s = eta_t (v_t - e^{c_{t-1}} M_0 k_t)

and outputs / end state are matmuls of u. The triangular solves do not depend on M_0, so they run
for every chunk at once; only a few small matmuls per chunk remain sequential.
Inputs: q, k [B, H, T, dk]; v [B, H, T, dv]; eta, log_retention [B, H, T]; memory [B, H, dv, dk].
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .chunk_scan import chunk_scan
from .common import float32_kernel, pad_tokens, solve_unit_lower


class DeltaRuleResult(NamedTuple):
    output: torch.Tensor  # [B, H, T, dv]  M_t q_t
    error: torch.Tensor | None  # [B, H, T, dv]  v_t - M_{t-1} k_t (prediction error before the write)
    memory: torch.Tensor  # [B, H, dv, dk]  memory after the last token


def gated_delta_rule_reference(q, k, v, eta, log_retention, memory) -> DeltaRuleResult:
    """Per-token loop: the oracle the chunked form is tested against."""
    outputs, errors = [], []
    for t in range(k.shape[2]):
        k_t, v_t, q_t = k[:, :, t], v[:, :, t], q[:, :, t]
        error = v_t - torch.einsum("bhvk,bhk->bhv", memory, k_t)
        retention = log_retention[:, :, t].exp()[..., None, None]
        memory = retention * memory + eta[:, :, t, None, None] * error[..., :, None] * k_t[..., None, :]
        outputs.append(torch.einsum("bhvk,bhk->bhv", memory, q_t))
        errors.append(error)
    return DeltaRuleResult(torch.stack(outputs, 2), torch.stack(errors, 2), memory)


DEFAULT_CHUNK = 32  # fastest measured here (docs/performance.md "Kernel choices")
SCALED_DECAY_LIMIT = 30.0  # e^30 ~ 1e13: scaled keys stay far inside float32 range, products keep full precision


@float32_kernel
def gated_delta_rule(q, k, v, eta, log_retention, memory, chunk_size: int = DEFAULT_CHUNK,
                     return_error: bool = True, memory_keys: torch.Tensor | None = None,
                     log_retention_floor: float | None = None) -> DeltaRuleResult:
    """Exact chunk-wise gated delta rule; equals :func:`gated_delta_rule_reference`.

    ``memory_keys`` [B, H, T, dv] = M_0 k_t may be passed for a single chunk (T <= chunk_size) when
    the caller already has it (the self-modifying memory's gate computes it).
    ``log_retention_floor``: a lower bound on every log_retention that the caller guarantees (its
    gate is bounded); when a chunk's total decay then stays within e^-30, the one-chunk path scales
    keys and queries by e^{-c} and e^{c} instead of building a [C, C] decay matrix (fewer ops).
    The default chunk is the fastest measured (docs/performance.md "Kernel choices")."""
    B, H, T, dk = k.shape
    dv, C = v.shape[-1], min(chunk_size, T)
    N, n_chunks = B * H, -(-T // C)
    padded = n_chunks * C
    if n_chunks == 1:
        fold = lambda x: x.reshape(N, *x.shape[2:])
        unfold = lambda x: x.view(B, H, *x.shape[1:])
        output, error, memory = gated_delta_chunk(
            *map(fold, (q, k, v, eta, log_retention, memory)), None if memory_keys is None else fold(memory_keys),
            return_error, log_retention_floor)
        return DeltaRuleResult(unfold(output), None if error is None else unfold(error), unfold(memory))
    if memory_keys is not None:
        raise ValueError("memory_keys is for a single chunk (T <= chunk_size)")
    # Padding tokens have eta = 0, k = 0 and retention 1: they leave the memory untouched.
    q, k, v = (pad_tokens(x, padded).reshape(N * n_chunks, C, -1) for x in (q, k, v))
    eta, log_retention = (pad_tokens(x, padded, dim=-1).reshape(N * n_chunks, C) for x in (eta, log_retention))

    cum = log_retention.cumsum(-1)  # c_t inside each chunk
    # The [chunks, C, C] matrices are the big memory traffic here: each is built in place on one fresh
    # buffer (autograd supports these in-place steps; the gradient tests run through them).
    decay = (cum[:, :, None] - cum[:, None, :]).clamp_(max=0).exp_()  # e^{c_t - c_s}, lower triangle used
    k_t = k.transpose(1, 2)
    # e^{c_{t-1} - c_s} (k_t . k_s): how much of write s token t's prediction sees (s < t used)
    before = torch.bmm(k, k_t).mul_(decay).mul_((-log_retention).exp()[:, :, None])
    start_decay = (cum - log_retention).exp()  # e^{c_{t-1}}: the start memory as token t's write sees it
    # Read after the write: out_t = e^{c_t} M_0 q_t + sum_{s<=t} e^{c_t - c_s} (q_t . k_s) u_s.
    output, error, memory = chunk_scan(
        q, k, v, eta, before, torch.bmm(q, k_t).mul_(decay).tril_(), cum.exp(), start_decay,
        (cum[:, -1:] - cum).exp(), cum[:, -1].exp()[:, None, None], memory.reshape(N, dv, dk),
        "errors" if return_error else None)
    output = output.view(B, H, padded, dv)[:, :, :T]
    if error is not None:
        error = error.view(B, H, padded, dv)[:, :, :T]
    return DeltaRuleResult(output, error, memory.view(B, H, dv, dk))


@float32_kernel
def gated_delta_chunk(q, k, v, eta, log_retention, memory, memory_keys: torch.Tensor | None = None,
                      return_error: bool = False, log_retention_floor: float | None = None) -> DeltaRuleResult:
    """One chunk of the gated delta rule on folded tensors (batch and heads on one axis N): the
    self-modifying memory calls it once per chunk. Same algebra as ``chunk_scan``'s direct form,
    with fewer ops (every op here is dispatch-bound); ``memory_keys`` and ``log_retention_floor`` as
    in :func:`gated_delta_rule`.

    Shapes: q, k [N, C, dk]; v [N, C, dv]; eta, log_retention [N, C]; memory [N, dv, dk]; the result's
    fields are [N, C, dv], [N, C, dv] and [N, dv, dk]."""
    cum = log_retention.cumsum(-1)  # c_t
    previous = (cum - log_retention).exp().unsqueeze(-1)  # e^{c_{t-1}}  [N, C, 1]
    end = cum[:, -1:]  # c_C  [N, 1]
    run_decay = end.exp().unsqueeze(-1)  # e^{c_C}  [N, 1, 1]
    memory_t = memory.transpose(1, 2)
    if log_retention_floor is not None and q.shape[1] * log_retention_floor >= -SCALED_DECAY_LIMIT:
        # e^{c_t - c_s} (x_t . k_s) = (e^{c_t} x_t) . (e^{-c_s} k_s): decays folded into the factors,
        # exact up to rounding while |c| stays small (no [C, C] decay matrix, fewer ops)
        shrunk_keys = k * (-cum).exp().unsqueeze(-1)  # e^{-c_s} k_s
        shrunk_keys_t = shrunk_keys.transpose(1, 2)
        grown_queries = q * cum.exp().unsqueeze(-1)  # e^{c_t} q_t
        seen = torch.bmm(k * previous, shrunk_keys_t)
        reads = torch.bmm(grown_queries, shrunk_keys_t).tril_()
        start_reads = torch.bmm(grown_queries, memory_t)
        end_keys = shrunk_keys * run_decay  # e^{c_C - c_s} k_s
    else:
        k_t = k.transpose(1, 2)
        decay = (cum[:, :, None] - cum[:, None, :]).clamp_(max=0).exp_()  # e^{c_t - c_s}, lower triangle used
        seen = torch.bmm(k, k_t).mul_(decay).mul_((-log_retention).exp().unsqueeze(-1))
        reads = torch.bmm(q, k_t).mul_(decay).tril_()
        start_reads = torch.bmm(q, memory_t).mul_(cum.exp().unsqueeze(-1))
        end_keys = (end - cum).exp().unsqueeze(-1) * k
    # seen[t, s] = e^{c_{t-1} - c_s} (k_t . k_s): the system is I + diag(eta) seen (strictly lower part)
    if memory_keys is None:
        memory_keys = torch.bmm(k, memory_t)
    # v_t - e^{c_{t-1}} M_0 k_t: each token's error before the chunk's earlier writes
    residual = torch.addcmul(v, previous, memory_keys, value=-1)
    rate = eta.unsqueeze(-1)
    if return_error:  # the errors need seen and the residual as they are
        writes = solve_unit_lower(seen * rate, rate * residual)
    else:  # both fresh and not needed after the solve: scaled in place, no two more fresh buffers
        writes = solve_unit_lower(seen.mul_(rate), residual.mul_(rate))
    # Read after the write: out_t = e^{c_t} M_0 q_t + sum_{s<=t} e^{c_t - c_s} (q_t . k_s) u_s
    # Accumulated in place on fresh products (their backward needs only their inputs): baddbmm's
    # copy of its input into yet another fresh buffer cost as much as the matmul itself here.
    output = start_reads.baddbmm_(reads, writes)
    new_memory = (run_decay * memory).baddbmm_(writes.transpose(1, 2), end_keys)
    error = torch.baddbmm(residual, seen.tril(-1), writes, alpha=-1) if return_error else None
    return DeltaRuleResult(output, error, new_memory)
