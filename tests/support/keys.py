"""The memory's keys and values as the model used them, and a recording as files before unit keys (and errors)
held it."""
import torch

from nested_learning.recording import Recording, streams


def traced_keys(model, tokens: torch.Tensor) -> dict[int, torch.Tensor]:
    """Per memory layer, the keys phi(k) [T, H, dk] the memory wrote with, straight from the model's trace
    (under inference_mode, as ``record`` runs it)."""
    with torch.inference_mode():
        trace = model(tokens[None], trace=True).trace
    return {i: layer.memory.keys[0].transpose(0, 1).clone() for i, layer in enumerate(trace.layers)
            if layer.memory is not None}


def with_stored_keys(recording: Recording, keys: dict[int, torch.Tensor]) -> Recording:
    """``recording`` with the keys themselves stored in place of the unit keys (how older files hold them)."""
    tensors = {name: t for name, t in recording.tensors.items() if not name.endswith(".memory.unit_keys")}
    tensors.update({streams.memory(layer, "keys"): k for layer, k in keys.items()})
    return Recording(recording.config, tensors, recording.text, recording.ablation, recording.start_position,
                     recording.meta)


def traced_values(model, tokens: torch.Tensor, **forward) -> dict[int, torch.Tensor]:
    """Per memory layer, the values v_t [T, H, d] the memory wrote, straight from the model's trace."""
    with torch.inference_mode():
        trace = model(tokens[None], trace=True, **forward).trace
    return {i: layer.memory.values[0].transpose(0, 1).clone() for i, layer in enumerate(trace.layers)
            if layer.memory is not None}


def with_stored_writes(recording: Recording) -> Recording:
    """``recording`` with the writes and values stored in place of the errors (how older files hold them)."""
    tensors = {name: t for name, t in recording.tensors.items() if not name.endswith(".memory.errors")}
    for layer in recording.memory_layers:
        tensors[streams.memory(layer, "writes")] = recording.memory_stream(layer, "writes").clone()
        tensors[streams.memory(layer, "values")] = recording.memory_stream(layer, "values").clone()
    return Recording(recording.config, tensors, recording.text, recording.ablation, recording.start_position,
                     recording.meta)
