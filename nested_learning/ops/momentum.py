"""Titans memory with momentum, mini-batch semantics, for one chunk.

Exact per-token momentum has no cheap parallel form, so (as in Titans) the gradients of a chunk are
taken at a reference memory M_ref, the memory at the start of the chunk on the stream's clock:

    error_t = v_t - M_ref k_t                  (gradient of 1/2||M k - v||^2 at M_ref is -error k^T)
    S_t     = beta_t S_{t-1} + eta_t error_t k_t^T      (momentum; beta = 0 switches it off)
    M_t     = alpha_t M_{t-1} + S_t                     (alpha is retention)
    out_t   = M_t q_t

With a_t = sum log alpha and b_t = sum log beta, M_t = e^{a_t} M_0 + d_t S_0 + sum_s c_ts w_s k_s^T,
c_ts = sum_{r=s..t} e^{a_t - a_r} e^{b_r - b_s}: two decay matrices and one matmul between them.
The chunk length is a model hyperparameter (``memory_chunk_size``); the oracle loop below uses the
same reference memory, so both compute the same thing.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .common import float32_kernel, segment_sum
from .shape_check import shapes

SPECS = dict(q="B H T dk", k="B H T dk", v="B H T dv", eta="B H T", log_retention="B H T", memory="B H dv dk",
             momentum="B H dv dk", reference="B H dv dk", returns=("B H T dv", "B H T dv", "B H dv dk", "B H dv dk"))


class MomentumResult(NamedTuple):
    output: torch.Tensor  # [B, H, T, dv]
    error: torch.Tensor  # [B, H, T, dv] v_t - M_ref k_t
    memory: torch.Tensor  # [B, H, dv, dk]
    momentum: torch.Tensor  # [B, H, dv, dk]


@shapes(momentum_gate="B H T", **SPECS)
def momentum_rule_reference(q, k, v, eta, log_retention, momentum_gate, memory, momentum, reference):
    """Per-token loop with the same reference memory: the oracle. ``momentum_gate`` is beta in [0, 1)."""
    error = v - k @ reference.transpose(-1, -2)
    outputs = []
    for t in range(k.shape[2]):
        write = eta[:, :, t, None, None] * error[:, :, t, :, None] * k[:, :, t, None, :]
        momentum = momentum_gate[:, :, t, None, None] * momentum + write
        memory = log_retention[:, :, t].exp()[..., None, None] * memory + momentum
        outputs.append(torch.einsum("bhvk,bhk->bhv", memory, q[:, :, t]))
    return MomentumResult(torch.stack(outputs, 2), error, memory, momentum)


@shapes(log_momentum_gate="B H T", **SPECS)
@float32_kernel
def momentum_rule_chunk(q, k, v, eta, log_retention, log_momentum_gate, memory, momentum, reference):
    """Chunk form of :func:`momentum_rule_reference`. ``log_momentum_gate=None`` means beta = 0."""
    error = v - k @ reference.transpose(-1, -2)
    writes = eta[..., None] * error  # w_s
    retention_decay = segment_sum(log_retention).exp()  # e^{a_t - a_r}, r <= t
    retention_from_start = log_retention.cumsum(-1).exp()  # e^{a_t}
    if log_momentum_gate is None:  # beta = 0: S_t is just the token's own write
        coeff = retention_decay
        momentum_decay = torch.eye(k.shape[2], dtype=k.dtype, device=k.device)
        carry = torch.zeros_like(retention_from_start)[..., None]
        momentum_from_start = torch.zeros_like(retention_from_start)
    else:
        momentum_decay = segment_sum(log_momentum_gate).exp()  # e^{b_r - b_s}, s <= r
        coeff = retention_decay @ momentum_decay
        momentum_from_start = log_momentum_gate.cumsum(-1).exp()  # e^{b_t}
        carry = retention_decay @ momentum_from_start[..., None]  # d_t, [.., C, 1]
    read = (q @ k.transpose(-1, -2)) * coeff
    output = (retention_from_start[..., None] * (q @ memory.transpose(-1, -2))
              + carry * (q @ momentum.transpose(-1, -2)) + read @ writes)
    new_memory = (retention_from_start[..., -1, None, None] * memory + carry[..., -1, :, None] * momentum
                  + (coeff[..., -1, :, None] * writes).transpose(-1, -2) @ k)
    new_momentum = (momentum_from_start[..., -1, None, None] * momentum
                    + (momentum_decay[..., -1, :, None] * writes).transpose(-1, -2) @ k)
    return MomentumResult(output, error, new_memory, new_momentum)
