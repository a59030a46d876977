"""The sequential part of the block-frozen delta rule (``block_delta.py``), in two exact forms chosen by shape.

For each chunk of C tokens with start memory M [dv, dk] (axis glossary in ``common.py``), a kernel
supplies its decays and masks and the scan computes

    e      = V - diag(write_start) K M^T - G u                 each write's prediction error
    u      = diag(eta) e                                        the chunk's writes
    out    = diag(read_start) Q M^T + S u                        what each token reads
    M_next = run_decay M + u^T diag(write_end) K                 the memory after the chunk

where G (``seen``, strictly lower part used) says how much of write s token t's prediction sees
and S (``reads``) how much of it token t reads. So u = T^-1 diag(eta) (V - diag(write_start) K M^T)
with T = I + diag(eta) G. When values are wider than keys the writes are never formed:
with Y = S T^-1 and R = T^-T diag(write_end) K (both from one explicit T^-1, see below),

    out    = (diag(read_start) Q - Y diag(eta write_start) K) M^T + Y diag(eta) V
    M_next = M (run_decay I - K^T diag(eta write_start) R) + V^T diag(eta) R

so every sequential step is dk x dk, and dv-wide data (values, outputs) passes through a few
batched matmuls only: on CPU fresh dv-wide temporaries cost more than the flops. T^-1 itself is
formed once (one triangular solve against the identity) and Y, R, and the recorded writes are
matmuls with it: a batched [C, C] triangular solve costs several matmuls of its size.
That pays when values are wider than keys (a CMS level: dv = d_model, dk = its hidden width). With
dv <= dk the direct form is cheaper (fewer big matmuls): one solve gives u = U_v - U_m M^T for
every chunk, and the sequential step forms u per chunk.
"""
from __future__ import annotations

import torch

from .common import solve_unit_lower


def chunk_scan(q, k, v, eta, seen, reads, read_start, write_start, write_end, run_decay, memory,
               return_writes: bool = False):
    """Shapes: q, k [N n, C, dk]; v [N n, C, dv]; eta [N n, C]; seen, reads [N n, C, C]; memory
    [N, dv, dk] (n chunks per sequence); read_start, write_start, write_end [N n, C] and run_decay
    [N n, 1, 1], or [1, C] and [1, 1, 1] when every chunk shares them.
    ``return_writes``: also return the writes u (a CMS level's trace).

    Returns (out [N n, C, dv], u [N n, C, dv] or None, memory after the last chunk [N, dv, dk])."""
    N, dv, dk = memory.shape
    if dv <= dk:
        return _direct_scan(q, k, v, eta, seen, reads, read_start, write_start, write_end, run_decay, memory,
                            return_writes)
    n = k.shape[0] // N
    k_t = k.transpose(1, 2)
    system = seen * eta[:, :, None]
    # T^-1 from X T = I (the right-hand form needs no layout copy), then Y = S T^-1 and
    # R = T^-T (E K): one solve and two matmuls beat two solves (docs/performance.md "Kernel choices"),
    # and a recorded write is a matmul, not a dv-wide solve.
    identity = torch.eye(system.shape[-1], dtype=system.dtype, device=system.device).expand_as(system)
    inverse = torch.linalg.solve_triangular(system, identity, upper=False, left=False, unitriangular=True)
    mixing = torch.bmm(reads, inverse)
    reach = torch.bmm(inverse.transpose(1, 2), write_end[:, :, None] * k)  # R [C, dk]
    eta_start = (eta * write_start)[:, :, None]
    # Accumulated in place on a fresh product (its backward needs only its inputs): no bmm, no
    # subtraction, and no copy of the input into another fresh [C, dk] buffer (as baddbmm would make).
    read_keys = (read_start[:, :, None] * q).baddbmm_(mixing, eta_start * k, alpha=-1)
    # (run_decay may be one shared [1, 1, 1]: baddbmm broadcasts it, an in-place call could not)
    step = torch.baddbmm(torch.eye(dk, dtype=k.dtype, device=k.device) * run_decay, k_t, eta_start * reach, alpha=-1)
    gained = torch.bmm(v.transpose(1, 2), eta[:, :, None] * reach).view(N, n, dv, dk)
    step = step.view(N, n, dk, dk)
    starts = []
    for gained_c, step_c in zip(gained.unbind(1), step.unbind(1)):  # the only sequential work: one
        starts.append(memory)                                          # [dv, dk] x [dk, dk] step per chunk
        memory = torch.baddbmm(gained_c, memory, step_c)
    start_memory = torch.stack(starts, 1).view(N * n, dv, dk)
    # In place on bmm's fresh output (bmm's backward needs only its inputs): no copy of it.
    out = torch.bmm(mixing * eta[:, None, :], v).baddbmm_(read_keys, start_memory.transpose(1, 2))
    if not return_writes:
        return out, None, memory
    # The writes themselves: u = T^-1 diag(eta) (V - diag(write_start) K M^T), one dv-wide matmul
    residual = v - write_start[:, :, None] * torch.bmm(k, start_memory.transpose(1, 2))
    return out, torch.bmm(inverse, eta[:, :, None] * residual), memory


def _direct_scan(q, k, v, eta, seen, reads, read_start, write_start, write_end, run_decay, memory, return_writes):
    """chunk_scan with the writes formed: u = U_v - U_m M^T, (U_v, U_m) = T^-1 diag(eta) [V, diag(write_start) K]."""
    N, dv, dk = memory.shape
    n, C = k.shape[0] // N, k.shape[1]
    system = seen * eta[:, :, None]
    rhs = torch.cat([eta[:, :, None] * v, (eta * write_start)[:, :, None] * k], dim=-1)
    solved = solve_unit_lower(system, rhs)
    from_values, from_memory = solved[..., :dv].view(N, n, C, dv), solved[..., dv:].view(N, n, C, dk)
    end_keys = (write_end[:, :, None] * k).view(N, n, C, dk)
    run_decay = run_decay.expand(N * n, 1, 1).view(N, n, 1, 1)
    starts, writes = [], []
    for c in range(n):  # sequential: the memory at each chunk start and that chunk's writes
        starts.append(memory)
        u = torch.baddbmm(from_values[:, c], from_memory[:, c], memory.transpose(1, 2), alpha=-1)
        writes.append(u)
        memory = (run_decay[:, c] * memory).baddbmm_(u.transpose(1, 2), end_keys[:, c])
    start_memory = torch.stack(starts, 1).view(N * n, dv, dk)
    writes = torch.stack(writes, 1).view(N * n, C, dv)
    out = (read_start[:, :, None] * torch.bmm(q, start_memory.transpose(1, 2))).baddbmm_(reads, writes)
    return out, writes if return_writes else None, memory
