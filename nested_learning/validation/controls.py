"""Controls that isolate the memory: another sequence's fast weights, or the learned initial ones,
in place of a sequence's own.

"Updates off" is not a control (a model trained with its memory is broken without it; docs/validation.md).
These are: the model runs exactly as trained, but what it learned in context is
replaced. Only the fast weights move; the local context stays the sequence's own: the attention
cache (the window), the causal conv's last inputs and each CMS level's previous input. Anything a
prediction still gets right under a control came through the window, not the memory.
"""
from __future__ import annotations

import dataclasses

import torch

from ..model import HopeTransformer
from ..state import HopeState, map_tensors


def _fast_weights(layer):
    """(memory fields, CMS level fields) of a layer state: the parts a control replaces."""
    memory = layer.memory
    fields = {}
    if memory is not None:
        fields = {"memory": memory.memory, "reference": memory.reference, "momentum": memory.momentum,
                  "projections": memory.projections, "hidden_memory": memory.hidden_memory,
                  "hidden_reference": memory.hidden_reference, "hidden_momentum": memory.hidden_momentum}
    return fields, [{"memory": level.memory, "pending": level.pending} for level in layer.cms]


def replace_memory(state: HopeState, source: HopeState) -> HopeState:
    """``state`` with every fast weight (main memory, its chunk reference and momentum, projection
    memories, CMS levels) taken from ``source``; attention cache, conv history and CMS previous
    inputs stay ``state``'s. Both must hold the same number of sequences."""
    if state.batch_size != source.batch_size:
        raise ValueError(f"source holds {source.batch_size} sequences, state {state.batch_size}")
    layers = []
    for own, other in zip(state.layers, source.layers):
        memory_fields, level_fields = _fast_weights(other)
        memory = dataclasses.replace(own.memory, **memory_fields) if own.memory is not None else None
        cms = [dataclasses.replace(level, **fields) for level, fields in zip(own.cms, level_fields)]
        layers.append(dataclasses.replace(own, memory=memory, cms=cms))
    return HopeState(state.position, layers)


def swapped_memory(state: HopeState, shift: int = 1) -> HopeState:
    """Row b gets row (b + shift) mod B's fast weights: another document's memory, taken at the same
    stream position (the rows of a batch are read in lockstep)."""
    B = state.batch_size
    if B < 2:
        raise ValueError("a swap control needs at least two sequences in the batch")
    order = torch.arange(B).roll(-shift)
    return replace_memory(state, map_tensors(state, lambda t: t[order.to(t.device)] if t.dim() and t.shape[0] == B else t))


def reset_memory(state: HopeState, model: HopeTransformer) -> HopeState:
    """The learned initial fast weights in place of the sequence's own (the local context is kept)."""
    return replace_memory(state, model.init_state(state.batch_size))
