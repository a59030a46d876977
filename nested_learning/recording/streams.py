"""The names of a recording's tensors, formatted in one place.

A recording is a flat dict of tensors whose keys are also its file's keys (safetensors), so the names
are its contract: per layer ``layers.{i}.memory.{stream}`` [T, H] for the per-token streams below,
``layers.{i}.memory.{unit_keys, writes, values}`` [T, H, d] (the factors that rebuild M_t exactly; keys
[T, H, dk] are derived from the unit keys, or stored as ``keys`` by a recorder that could not derive them),
``layers.{i}.memory.initial.{memory, momentum}``, ``layers.{i}.cms.input`` [T, D],
``layers.{i}.cms.initial.{level}.*``, ``layers.{i}.cms.params.*`` and ``layers.{i}.attention.weights``.
Library code asks these functions (or ``Recording.memory_stream``) instead of writing the strings.
"""
from __future__ import annotations

import re

# Per-token memory streams [T, H], each one number per token and head.
# (With Titans momentum, ``momentum_gate`` too.) The factors [T, H, d]: ``unit_keys`` (phi's input: the keys
# k_t = phi(unit key), ops.key_feature_map) and ``writes`` u_t = lr_t (v_t - M_{t-1} k_t) rebuild M_t exactly;
# ``values`` are kept for the delta rule's anatomy.
MEMORY_STREAMS = ("surprise", "gate_surprise", "learning_rate", "retention", "write_norm", "memory_norm")


def memory(layer: int, name: str) -> str:
    """``layers.{layer}.memory.{name}``: a memory stream, factor or ``initial.memory``/``initial.momentum``."""
    return f"layers.{layer}.memory.{name}"


def unit_keys_of(name: str) -> str | None:
    """``layers.{i}.memory.unit_keys`` for ``layers.{i}.memory.keys`` (the keys phi rebuilds from them), else None."""
    return name.removesuffix("keys") + "unit_keys" if re.fullmatch(r"layers\.\d+\.memory\.keys", name) else None


def cms(layer: int, name: str) -> str:
    """``layers.{layer}.cms.{name}``: ``input``, ``initial.{level}.{memory,pending,previous_input}`` or
    ``params.{parameter}``."""
    return f"layers.{layer}.cms.{name}"


def attention_weights(layer: int) -> str:
    return f"layers.{layer}.attention.weights"


def full_memory(layer: int) -> str:
    """Every M_t of a layer [T, H, d, dk] (float16, values x keys), when recorded with ``full_states``."""
    return "full." + memory(layer, "memory")
