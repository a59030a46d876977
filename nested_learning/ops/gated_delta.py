"""Gated delta rule (Hope eq 88): one chunk-wise exact kernel and its per-token oracle.

Per head, with keys of width dk, values of width dv (the shipped memory: dv = 128, dk = 1,024, keys
widened 8x by DPFP), retention alpha_t in (0, 1] and learning rate eta_t; M is dv x dk:

    error_t = v_t - M_{t-1} k_t                     (its norm is the token's *surprise*)
    M_t     = alpha_t M_{t-1} + eta_t error_t k_t^T   ( = M_{t-1}(alpha_t I - eta_t k k^T) + eta_t v k^T )
    out_t   = M_t q_t                                 (read after the write: still causal)

Chunk-wise form (the UT transform). Inside a chunk write u_t = eta_t * error_t and
c_t = sum_{i<=t} log alpha_i. Then u solves a unit lower-triangular system

    u_t + eta_t sum_{s<t} e^{c_{t-1}-c_s} (k_t.k_s) u_s = eta_t (v_t - e^{c_{t-1}} M_0 k_t)

and outputs / end state are matmuls of u (:func:`gated_delta_chunk`, one chunk: the self-modifying
memory calls it once per chunk). :func:`gated_delta_rule` is the same kernel looped over the chunks of
a longer sequence, for callers that hold whole [B, H, T, *] sequences.
Inputs: q, k [B, H, T, dk]; v [B, H, T, dv]; eta, log_retention [B, H, T]; memory [B, H, dv, dk].
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .common import cat_tokens, float32_kernel, solve_unit_lower
from .shape_check import shapes


class DeltaRuleResult(NamedTuple):
    output: torch.Tensor  # [B, H, T, dv]  M_t q_t
    error: torch.Tensor | None  # [B, H, T, dv]  v_t - M_{t-1} k_t (prediction error before the write)
    memory: torch.Tensor  # [B, H, dv, dk]  memory after the last token


@shapes(q="B H T dk", k="B H T dk", v="B H T dv", eta="B H T", log_retention="B H T", memory="B H dv dk",
        returns=("B H T dv", "B H T dv", "B H dv dk"))
def gated_delta_rule_reference(q, k, v, eta, log_retention, memory) -> DeltaRuleResult:
    """Per-token loop: the oracle the chunked kernel is tested against."""
    outputs, errors = [], []
    for t in range(k.shape[2]):
        k_t, v_t, q_t = k[:, :, t], v[:, :, t], q[:, :, t]
        error = v_t - torch.einsum("bhvk,bhk->bhv", memory, k_t)
        retention = log_retention[:, :, t].exp()[..., None, None]
        memory = retention * memory + eta[:, :, t, None, None] * error[..., :, None] * k_t[..., None, :]
        outputs.append(torch.einsum("bhvk,bhk->bhv", memory, q_t))
        errors.append(error)
    return DeltaRuleResult(torch.stack(outputs, 2), torch.stack(errors, 2), memory)


DEFAULT_CHUNK = 64  # fastest measured for the chunk loop (docs/performance.md "Kernel choices")
SCALED_DECAY_LIMIT = 30.0  # e^30 ~ 1e13: scaled keys stay far inside float32 range, products keep full precision


@shapes(q="B H T dk", k="B H T dk", v="B H T dv", eta="B H T", log_retention="B H T", memory="B H dv dk",
        returns=("B H T dv", "B H T dv", "B H dv dk"))
def gated_delta_rule(q, k, v, eta, log_retention, memory, chunk_size: int = DEFAULT_CHUNK,
                     return_error: bool = True, log_retention_floor: float | None = None) -> DeltaRuleResult:
    """The gated delta rule over a whole sequence: :func:`gated_delta_chunk`, the kernel the
    self-modifying memory runs, called once per chunk of ``chunk_size`` tokens (batch and heads folded),
    the memory carried from chunk to chunk. One kernel, so what the tests check is what the model runs.
    ``log_retention_floor`` as in :func:`gated_delta_chunk`."""
    B, H, T, dk = k.shape
    fold = lambda x: x.reshape(B * H, *x.shape[2:])
    unfold = lambda x: x.view(B, H, *x.shape[1:])
    q, k, v, eta, log_retention = map(fold, (q, k, v, eta, log_retention))
    memory = fold(memory)
    outputs, errors = [], []
    for a in range(0, T, chunk_size):
        b = a + chunk_size
        result = gated_delta_chunk(q[:, a:b], k[:, a:b], v[:, a:b], eta[:, a:b], log_retention[:, a:b], memory,
                                   return_error=return_error, log_retention_floor=log_retention_floor)
        memory = result.memory
        outputs.append(result.output)
        errors.append(result.error)
    error = unfold(cat_tokens(errors, 1)) if return_error else None
    return DeltaRuleResult(unfold(cat_tokens(outputs, 1)), error, unfold(memory))


@shapes(q="N C dk", k="N C dk", v="N C dv", eta="N C", log_retention="N C", memory="N dv dk",
        memory_keys="N C dv", returns=("N C dv", "N C dv", "N dv dk"))
@float32_kernel
def gated_delta_chunk(q, k, v, eta, log_retention, memory, memory_keys: torch.Tensor | None = None,
                      return_error: bool = False, log_retention_floor: float | None = None) -> DeltaRuleResult:
    """One chunk of the gated delta rule on folded tensors (batch and heads on one axis N): the kernel the
    model runs (the self-modifying memory calls it once per chunk). Same algebra as ``chunk_scan``'s
    direct form, with fewer ops (every op here is dispatch-bound).

    ``memory_keys`` [N, C, dv] = M_0 k_t, when the caller already has it (the self-modifying memory's
    gate computes it). ``log_retention_floor``: a lower bound on every log_retention that the caller
    guarantees (its gate is bounded); when the chunk's total decay then stays within e^-30, keys and
    queries are scaled by e^{-c} and e^{c} instead of building a [C, C] decay matrix (fewer ops).

    Shapes: q, k [N, C, dk]; v [N, C, dv]; eta, log_retention [N, C]; memory [N, dv, dk]; the result's
    fields are [N, C, dv], [N, C, dv] (None without ``return_error``) and [N, dv, dk]."""
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
