"""The sequential part shared by the chunk-wise kernels, in two exact forms chosen by shape.

For each chunk of C tokens with start memory M [dv, dk] (axis glossary in ``common.py``), a kernel
supplies its decays and masks and the scan computes

    e      = V - diag(write_start) K M^T - G u                 each write's prediction error
    u      = diag(eta) e                                        the chunk's writes
    out    = diag(read_start) Q M^T + S u                        what each token reads
    M_next = run_decay M + u^T diag(write_end) K                 the memory after the chunk

where G (``seen``, strictly lower part used) says how much of write s token t's prediction sees
and S (``reads``) how much of it token t reads. So u = T^-1 diag(eta) (V - diag(write_start) K M^T)
with T = I + diag(eta) G. When values are wider than keys the writes are never formed:
with Y = S T^-1 and R = T^-T diag(write_end) K, both right-hand triangular solves with T,

    out    = (diag(read_start) Q - Y diag(eta write_start) K) M^T + Y diag(eta) V
    M_next = M (run_decay I - K^T diag(eta write_start) R) + V^T diag(eta) R

so every solve and every sequential step is dk x dk, and dv-wide data (values, outputs) passes
through a few batched matmuls only: on CPU fresh dv-wide temporaries cost more than the flops.
That pays when values are wider than keys (a CMS level: dv = d_model, dk = its hidden width). With
dv <= dk the direct form is cheaper (fewer big matmuls): one solve gives u = U_v - U_m M^T for
every chunk, and the sequential step forms u per chunk.
"""
from __future__ import annotations

import torch

from .common import solve_unit_lower


def chunk_scan(q, k, v, eta, seen, reads, read_start, write_start, write_end, run_decay, memory,
               returns: str | None = None):
    """Shapes: q, k [N n, C, dk]; v [N n, C, dv]; eta [N n, C]; seen, reads [N n, C, C]; memory
    [N, dv, dk] (n chunks per sequence); read_start, write_start, write_end [N n, C] and run_decay
    [N n, 1, 1], or [1, C] and [1, 1, 1] when every chunk shares them.
    ``returns``: None, "errors" (e: the delta rule's per-token surprise) or "writes" (u: a CMS trace).

    Returns (out [N n, C, dv], e or u [N n, C, dv] or None, memory after the last chunk [N, dv, dk])."""
    N, dv, dk = memory.shape
    if dv <= dk:
        return _direct_scan(q, k, v, eta, seen, reads, read_start, write_start, write_end, run_decay, memory,
                            returns)
    n = k.shape[0] // N
    k_t = k.transpose(1, 2)
    system = seen * eta[:, :, None]
    # Y = S T^-1 and R^T = (E K)^T T^-1: two solves with one system ran ~20% faster here than one
    # solve of their concatenation (the copy into a fresh [C + dk, C] buffer cost more).
    mixing = torch.linalg.solve_triangular(system, reads, upper=False, left=False, unitriangular=True)
    reach = torch.linalg.solve_triangular(system, k_t * write_end[:, None, :], upper=False, left=False,
                                          unitriangular=True).transpose(1, 2)  # R [C, dk]
    eta_start = (eta * write_start)[:, :, None]
    # baddbmm with alpha -1 instead of bmm and a subtraction: one fresh [C, dk] buffer less each
    read_keys = torch.baddbmm(read_start[:, :, None] * q, mixing, eta_start * k, alpha=-1)
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
    if returns is None:
        return out, None, memory
    # One more solve, dv wide: u = T^-1 diag(eta) (V - diag(write_start) K M^T), and e from I + G diag(eta)
    residual = v - write_start[:, :, None] * torch.bmm(k, start_memory.transpose(1, 2))
    if returns == "writes":
        return out, solve_unit_lower(system, eta[:, :, None] * residual), memory
    return out, solve_unit_lower(seen * eta[:, None, :], residual), memory


def _direct_scan(q, k, v, eta, seen, reads, read_start, write_start, write_end, run_decay, memory, returns):
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
        memory = torch.baddbmm(run_decay[:, c] * memory, u.transpose(1, 2), end_keys[:, c])
    start_memory = torch.stack(starts, 1).view(N * n, dv, dk)
    writes = torch.stack(writes, 1).view(N * n, C, dv)
    out = torch.baddbmm(read_start[:, :, None] * torch.bmm(q, start_memory.transpose(1, 2)), reads, writes)
    if returns != "errors":
        return out, writes if returns == "writes" else None, memory
    # e = V - M_{t-1} k_t: the start memory's part plus the earlier writes seen
    memory_keys = torch.bmm(k, start_memory.transpose(1, 2))
    return out, v - torch.baddbmm(write_start[:, :, None] * memory_keys, seen.tril(-1), writes), memory
