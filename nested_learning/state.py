"""Explicit per-sample state: every fast weight, momentum, pending CMS sum, cache and clock.

Modules hold only learned parameters; everything that changes while the model reads lives here and
is passed in and out of each call. Two users, two states: nothing leaks between them.

Shapes (B batch, H heads, D model width, h hidden width of a fast MLP; a memory head reads values of
width dv = D / H through keys of width dk = key_expansion dv: the shipped memory is one head, 128 x 1,024):
    MemoryState.memory / reference / momentum    [B, H, dv, dk]   (values x keys: M k is a value)
    MemoryState.memory, memory_depth 2           [B, H, dv, h]    (W1 of the MLP memory; h = dv)
    MemoryState.hidden_memory / hidden_reference [B, H, h, dk]    (memory_depth 2 only: W2; and its momentum)
    ProjectionMemoryState.w_in / pending_in      [B, 3, h, D]   (key, value, gate memories)
    ProjectionMemoryState.w_out / pending_out    [B, 3, D, h]
    CMSLevelState.memory / pending               [B, 1, D, h]   (values D wide, keys h wide)
    AttentionCache.keys / values                 [B, H, S, d]   positions [S] (d = D / n_heads)
The same shapes as contracts (``ops/shape_check.py``), checked on the memories' calls in the tests:
``MEMORY_STATE_SHAPES``, ``CMS_LEVEL_STATE_SHAPES``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch


def map_tensors(obj, fn: Callable[[torch.Tensor], torch.Tensor]):
    """Apply ``fn`` to every tensor inside nested state dataclasses and lists."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **{f.name: map_tensors(getattr(obj, f.name), fn) for f in dataclasses.fields(obj)})
    if isinstance(obj, list):
        return [map_tensors(x, fn) for x in obj]
    return obj


def named_tensors(obj, prefix: str = ""):
    """Yield ``(dotted.name, tensor)`` for every tensor in a state, e.g. ``layers.0.memory.memory``."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from named_tensors(getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name)
    elif isinstance(obj, list):
        for i, x in enumerate(obj):
            yield from named_tensors(x, f"{prefix}.{i}" if prefix else str(i))


class _StateOps:
    def detach(self):
        """Cut the autograd graph (truncated backprop between segments)."""
        return map_tensors(self, lambda t: t.detach())

    def clone(self):
        return map_tensors(self, lambda t: t.clone())

    def to(self, device):
        return map_tensors(self, lambda t: t.to(device))

    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(named_tensors(self))


PROJECTION_STATE_SHAPES = {"w_in": "B 3 h D", "w_out": "B 3 D h", "pending_in": "B 3 h D", "pending_out": "B 3 D h",
                           "pending_log_retention": "B"}
MEMORY_STATE_SHAPES = {"memory": "B H dv dk", "reference": "B H dv dk", "momentum": "B H dv dk",
                       "projections": PROJECTION_STATE_SHAPES, "conv": "B width channels", "previous_query": "B 1 D"}
CMS_LEVEL_STATE_SHAPES = {"memory": "B 1 D h", "pending": "B 1 D h", "previous_input": "B D"}


@dataclass
class AttentionCache(_StateOps):
    keys: torch.Tensor  # rotary already applied
    values: torch.Tensor
    positions: torch.Tensor  # stream position of each cached key


@dataclass
class ProjectionMemoryState(_StateOps):
    w_in: torch.Tensor
    w_out: torch.Tensor
    pending_in: torch.Tensor  # gradient sum of the unfinished chunk
    pending_out: torch.Tensor
    pending_log_retention: torch.Tensor  # [B] sum of log retention over the unfinished chunk


@dataclass
class MemoryState(_StateOps):
    memory: torch.Tensor  # M_t
    reference: torch.Tensor  # M at the last chunk boundary: where gate surprise and momentum gradients are taken
    momentum: torch.Tensor | None = None
    projections: ProjectionMemoryState | None = None
    conv: torch.Tensor | None = None  # [B, conv width - 1, conv channels] last inputs of the causal conv
    previous_query: torch.Tensor | None = None  # [B, 1, D] the last token's query features (shifted keys)
    # memory_depth 2: the MLP's first layer W2 (memory and reference then hold its second layer W1)
    hidden_memory: torch.Tensor | None = None
    hidden_reference: torch.Tensor | None = None
    hidden_momentum: torch.Tensor | None = None  # memory_depth 2 with momentum: W2's (momentum then holds W1's)


@dataclass
class CMSLevelState(_StateOps):
    memory: torch.Tensor  # weights read inside the current block
    pending: torch.Tensor  # accumulated update of the unfinished block
    previous_input: torch.Tensor  # [B, D] the level input of the previous token (its next-input objective)


@dataclass
class LayerState(_StateOps):
    attention: AttentionCache | None = None
    memory: MemoryState | None = None
    cms: list[CMSLevelState] = field(default_factory=list)


@dataclass
class HopeState(_StateOps):
    position: int  # tokens read so far: the clock of every CMS level, memory chunk and rotary position
    layers: list[LayerState]

    @property
    def batch_size(self) -> int | None:
        """Sequences the state holds; None for a model with no attention, memory or CMS (its state is
        only a position, which fits any batch)."""
        for _, t in named_tensors(self):
            return t.shape[0]
        return None
