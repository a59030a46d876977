"""Block-frozen delta rule: the kernel of one Continuum Memory System level.

A level with period P is frozen inside each block of P tokens (blocks are aligned to the stream's
token clock, so they carry across calls). Every token of a block reads the block-start weights and
adds its delta-rule gradient to a pending sum; at the block's last token ONE update is applied:

    u_s       = eta_s (v_s - M_b k_s)                 (gradient of 1/2||M k - v||^2 at M_b, times lr)
    M_{b+1}   = retention * M_b + sum_{s in block b} u_s k_s^T
    out_t     = M_{b(t)} q_t                           (read before the block's update: causal)

This is the gated delta rule with a block mask: in the chunk form, token t sees the writes of
token s only when block(s) < block(t). A block cut by the end of a call keeps M_b frozen and its
pending sum in the state; it is completed, never dropped or applied early, by the next call.
Shapes: q, k [B, H, T, dk]; v [B, H, T, dv]; eta [B, H, T]; memory, pending [B, H, dv, dk];
log_retention: a tensor broadcastable to [B, H] (one retention per level, per block).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from .chunk_scan import chunk_scan
from .common import cat_tokens, float32_kernel, solve_unit_lower
from .shape_check import shapes


class BlockDeltaResult(NamedTuple):
    output: torch.Tensor  # [B, H, T, dv]
    memory: torch.Tensor  # weights the next token will read
    pending: torch.Tensor  # sum of u k^T of the unfinished block (zeros when the call ends on a boundary)
    writes: torch.Tensor | None  # [B, H, T, dv] the u_s of every token (for recording), when asked


@shapes(q="B H T dk", k="B H T dk", v="B H T dv", eta="B H T", memory="B H dv dk", pending="B H dv dk",
        returns=("B H T dv", "B H dv dk", "B H dv dk", "B H T dv"))
def block_delta_rule_reference(q, k, v, eta, log_retention, memory, pending, start: int, period: int):
    """Per-token loop: the oracle of :func:`block_delta_rule`."""
    retention = torch.as_tensor(log_retention, dtype=memory.dtype, device=memory.device).exp()
    retention = retention.reshape(retention.shape + (1, 1))
    outputs, writes = [], []
    for t in range(k.shape[2]):
        outputs.append(torch.einsum("bhvk,bhk->bhv", memory, q[:, :, t]))
        u = eta[:, :, t, None] * (v[:, :, t] - torch.einsum("bhvk,bhk->bhv", memory, k[:, :, t]))
        pending = pending + u[..., :, None] * k[:, :, t, None, :]
        writes.append(u)
        if (start + t + 1) % period == 0:
            memory, pending = retention * memory + pending, torch.zeros_like(pending)
    return BlockDeltaResult(torch.stack(outputs, 2), memory, pending, torch.stack(writes, 2))


def _runs(start: int, length: int, span: int):
    """Split [start, start+length) at multiples of ``span``: (a, b, aligned_full) per run."""
    a = 0
    while a < length:
        b = min(length, ((start + a) // span + 1) * span - start)
        yield a, b, (start + a) % span == 0 and b - a == span
        a = b


@shapes(q="B H T dk", k="B H T dk", v="B H T dv", eta="B H T", memory="B H dv dk", pending="B H dv dk",
        returns=("B H T dv", "B H dv dk", "B H dv dk", "B H T dv"))
@float32_kernel
def block_delta_rule(q, k, v, eta, log_retention, memory, pending, start: int, period: int,
                     chunk_tokens: int = 64, return_writes: bool = True) -> BlockDeltaResult:
    """Exact chunk-wise form of :func:`block_delta_rule_reference`.

    Runs are whole blocks about ``chunk_tokens`` long, aligned to the stream clock. Aligned full runs
    (all but possibly the first and last) share one block structure and start with no pending sum,
    so their triangular solves run for all of them at once; only a few matmuls per run stay sequential.
    Internally batch and heads are folded into one axis N (3-D matmuls dispatch far cheaper).
    Without ``return_writes`` the result's ``writes`` is None (the aligned runs never form them).
    """
    B, H, T, _ = k.shape
    fold = lambda x: x.reshape(B * H, *x.shape[2:])
    q, k, v, eta, memory, pending = map(fold, (q, k, v, eta, memory, pending))
    log_retention = torch.as_tensor(log_retention, dtype=memory.dtype, device=memory.device)
    la = log_retention.expand(B, H).reshape(B * H, 1, 1)
    # One retention for every sequence (a CMS level's): the aligned runs' decays stay one shared row.
    la_runs = log_retention.reshape(1, 1, 1) if log_retention.numel() == 1 else la
    span = max(1, chunk_tokens // period) * period
    # A period longer than a chunk makes each run one block, read with frozen weights: a few matmuls
    # (the n_blocks == 1 path of _one_run) where the scan would build span x span matrices of zeros.
    runs = [(a, b, full and period <= chunk_tokens) for a, b, full in _runs(start, T, span)]
    outputs, writes_all = [], []
    i = 0
    while i < len(runs):
        a, b, full = runs[i]
        j = i
        if full:  # consecutive aligned full runs go together
            while j + 1 < len(runs) and runs[j + 1][2]:
                j += 1
            b = runs[j][1]
            out, writes, memory = _full_runs(q[:, a:b], k[:, a:b], v[:, a:b], eta[:, a:b], la_runs, memory, span,
                                             period, return_writes)
        else:
            out, writes, memory, pending = _one_run(q[:, a:b], k[:, a:b], v[:, a:b], eta[:, a:b], la, memory, pending,
                                                    start + a, period)
        outputs.append(out)
        writes_all.append(writes)
        i = j + 1
    unfold = lambda x: x.reshape(B, H, *x.shape[1:])
    writes = unfold(cat_tokens(writes_all, 1)) if return_writes else None
    return BlockDeltaResult(unfold(cat_tokens(outputs, 1)), unfold(memory), unfold(pending), writes)


def _block_layout(block: torch.Tensor, dtype):
    """For relative block ids [C]: steps b_t - b_s - 1 (0 where negative) and the mask b_s < b_t, [C, C]."""
    bt, bs = block[:, None], block[None, :]
    return (bt - bs - 1).clamp(min=0).to(dtype), (bs < bt).to(dtype)


def _block_decay(steps: torch.Tensor, earlier: torch.Tensor, la: torch.Tensor) -> torch.Tensor:
    """decay[t, s] = retention^(b_t - b_s - 1) where b_s < b_t, else 0 (broadcast over la's leading axes)."""
    return (steps * la).exp_() * earlier


@functools.lru_cache(maxsize=64)
def _run_structure(span: int, period: int, device: torch.device, dtype: torch.dtype):
    """The block layout every aligned run shares: block ids [C] and ``_block_layout``. Cached
    (read-only constants): rebuilding them was a dozen ops per call. Built as normal tensors even
    inside inference_mode, so training may save them for backward later."""
    with torch.inference_mode(False):
        block = torch.arange(span, device=device) // period
        return (block.to(dtype), *_block_layout(block, dtype))


def _full_runs(q, k, v, eta, la, memory, span: int, period: int, return_writes: bool):
    """n aligned runs of ``span`` tokens: each ends on a block boundary and starts with no pending sum.

    Folded shapes: q, k [N, T, dk], v [N, T, dv], eta [N, T], la [N or 1, 1, 1], memory [N, dv, dk].
    Block b of a run reads retention^b M (M: the weights at the run start) plus the earlier blocks'
    writes; the scan (chunk_scan.py) does the rest."""
    N, T, dk = k.shape
    dv, n = v.shape[-1], T // span
    q, k, v = (x.reshape(N * n, span, -1) for x in (q, k, v))
    eta = eta.reshape(N * n, span)
    block_f, steps, earlier = _run_structure(span, period, k.device, k.dtype)
    # Every run has the same block structure: the masks and decays are built once per sequence (once
    # in all when la is shared, [1, 1, 1]) and broadcast over its runs.
    decay = _block_decay(steps, earlier, la)[:, None]  # [N or 1, 1, C, C]
    per_run = (lambda x: x) if la.shape[0] == 1 else (
        lambda x: x[:, None].expand(N, n, *x.shape[1:]).reshape(N * n, *x.shape[1:]))
    start_decay = per_run((block_f * la[:, 0]).exp())  # [N n, C]: retention^b, the weights block b reads
    end_decay = per_run(((span // period - 1 - block_f) * la[:, 0]).exp())  # a write's decay to the run end
    # In place on bmm's fresh outputs (its backward needs only its inputs).
    seen = torch.bmm(k, k.transpose(1, 2)).view(N, n, span, span).mul_(decay).view(N * n, span, span)
    reads = torch.bmm(q, k.transpose(1, 2)).view(N, n, span, span).mul_(decay).view(N * n, span, span)
    out, writes, memory = chunk_scan(q, k, v, eta, seen, reads, start_decay, start_decay, end_decay,
                                     per_run(((span // period) * la).exp()), memory,
                                     return_writes)
    return out.view(N, T, dv), None if writes is None else writes.reshape(N, T, dv), memory


def _one_run(q, k, v, eta, la, memory, pending, first_position: int, period: int):
    """A run of whole blocks that may start inside a block (with a pending sum) or stop inside one."""
    T = k.shape[1]
    block = torch.arange(first_position, first_position + T, device=k.device) // period
    block = block - block[0]  # 0 .. n_blocks-1 inside this run
    n_blocks = int(block[-1]) + 1
    complete = (first_position + T) % period == 0
    memory_t, pending_t, k_t = memory.transpose(1, 2), pending.transpose(1, 2), k.transpose(1, 2)
    if n_blocks == 1:  # one block: every token reads the same frozen weights
        writes = eta[:, :, None] * (v - torch.bmm(k, memory_t))
        out = torch.bmm(q, memory_t)
        pending = torch.baddbmm(pending, writes.transpose(1, 2), k)
        if complete:
            memory, pending = la.exp() * memory + pending, torch.zeros_like(pending)
        return out, writes, memory, pending
    block_f = block.to(k.dtype)
    la_t = la[:, 0]  # [N, 1]
    decay = _block_decay(*_block_layout(block, k.dtype), la)  # [N, C, C]
    start_decay = (block_f * la_t).exp()[:, :, None]  # [N, C, 1]: retention^b
    # The pending sum joins the weights at block 0's update: retention^(b-1) for blocks b >= 1.
    pending_decay = torch.where(block >= 1, ((block_f - 1) * la_t).exp(), 0.0)[:, :, None]
    system = torch.bmm(k, k_t) * decay * eta[:, :, None]
    rhs = eta[:, :, None] * (v - start_decay * torch.bmm(k, memory_t) - pending_decay * torch.bmm(k, pending_t))
    writes = solve_unit_lower(system, rhs)
    out = (start_decay * torch.bmm(q, memory_t) + pending_decay * torch.bmm(q, pending_t)
           + torch.bmm(torch.bmm(q, k_t) * decay, writes))
    # Weights after the last finished block; an unfinished last block keeps its writes pending.
    done = n_blocks if complete else n_blocks - 1
    coeff = torch.where(block < done, ((done - 1 - block_f) * la_t).exp(), 0.0)[:, :, None]
    memory = torch.baddbmm((done * la).exp() * memory + ((done - 1) * la).exp() * pending,
                           (coeff * writes).transpose(1, 2), k)
    if complete:
        pending = torch.zeros_like(pending)
    else:
        pending = torch.bmm(((block == n_blocks - 1).to(writes.dtype)[None, :, None] * writes).transpose(1, 2), k)
    return out, writes, memory, pending
