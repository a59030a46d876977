"""Checkpoints: safetensors with the config and a format version in the file's metadata.

Loading validates size, header (JSON within size, depth and number limits), format, config (every
field bounded), key set, shapes, dtypes and finiteness before the model is built, and raises
:class:`CheckpointError` with one line naming the problem. The key set and shapes are computed from the
config by arithmetic (:mod:`.shapes`), so refusing a file costs time and memory bounded by the limits,
never by what the file claims. Nothing is unpickled: a checkpoint is data only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes

from .config import HopeConfig
from .device import resolve_device
from .model import HopeTransformer
from .safe_files import check_entry, check_tiling, parse_json, parse_tagged, read_bytes, short, write_safetensors
from .shapes import parameter_shapes

FORMAT = "nested_learning.checkpoint"
FORMAT_VERSION = "1"
MAX_BYTES = 1 << 30  # 1 GiB: far above any model this tool trains
# A parameter this large is degenerate: the product of two overflows float32 (3.4e38), so the model's outputs
# are inf, NaN or constant. Trained weights stay below 100.
MAX_PARAMETER = 1e18


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message is one line naming the problem."""


def _parameters(model: HopeTransformer) -> dict[str, torch.Tensor]:
    # named_parameters() lists a tied weight once, so the file holds no duplicate storage.
    return dict(model.named_parameters())


def save_checkpoint(model: HopeTransformer, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write the model's parameters and config atomically; ``metadata`` must be JSON-serialisable.
    A model with a non-finite parameter is refused (CheckpointError): the file could not be loaded back."""
    tensors = {name: p.detach().to("cpu", torch.float32).contiguous() for name, p in _parameters(model).items()}
    for key, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"not saved: parameter {key!r} has non-finite values (NaN or inf)")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config.to_json(),
              "metadata": json.dumps(metadata or {}, sort_keys=True)}
    return write_safetensors(path, tensors, header)


def read_checkpoint_info(source) -> tuple[HopeConfig, dict, dict]:
    """Validate the header of a checkpoint (path or bytes) without loading tensors.

    Returns (config, user metadata, tensor header entries)."""
    data, name = read_bytes(source, MAX_BYTES, CheckpointError)
    return _validate_header(data, name)[:3]


def _validate_header(data: bytes, name: str):
    header, data_len, meta = parse_tagged(data, name, CheckpointError, FORMAT, FORMAT_VERSION, "checkpoint")
    if "config" not in meta:
        raise CheckpointError(f"{name}: bad config: the metadata holds no config")
    config = parse_json(meta["config"], name, "config", CheckpointError)
    try:
        config = HopeConfig.from_saved(config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{name}: bad config: {e}") from None
    user_metadata = parse_json(meta.get("metadata", "{}"), name, "metadata", CheckpointError)
    if not isinstance(user_metadata, dict):
        raise CheckpointError(f"{name}: metadata is not a JSON object")
    # Arithmetic on the (bounded) config: nothing is built before the file is known to match it.
    expected = {k: (shape, "F32") for k, shape in parameter_shapes(config).items()}
    missing = sorted(set(expected) - set(header))
    if missing:
        raise CheckpointError(f"{name}: missing tensor {short(missing[0])} for this config" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    unexpected = sorted(set(header) - set(expected))
    if unexpected:
        raise CheckpointError(f"{name}: unexpected tensor {short(unexpected[0])} for this config")
    for key, (shape, dtype) in expected.items():
        check_entry(header, key, name, data_len, CheckpointError, shape=shape, dtype=dtype)
    check_tiling(header, name, data_len, CheckpointError)
    return config, user_metadata, header, expected


def load_checkpoint(source, device: str | torch.device = "auto") -> HopeTransformer:
    """Load a checkpoint (path or bytes) into a new model in eval mode on ``device``.

    The checkpoint's user metadata is set as ``model.checkpoint_metadata`` (declared on the model class)."""
    data, name = read_bytes(source, MAX_BYTES, CheckpointError)
    config, user_metadata, _, _ = _validate_header(data, name)
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as e:  # the safetensors parser's own checks
        raise CheckpointError(f"{name}: damaged safetensors data ({(str(e).splitlines() or [type(e).__name__])[0][:200]})") from None
    for key, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{name}: tensor {key!r} has non-finite values (NaN or inf)")
        if tensor.numel() and (largest := float(tensor.abs().max())) > MAX_PARAMETER:
            raise CheckpointError(f"{name}: tensor {key!r} holds {largest:.3g}: a degenerate model (values past "
                                  f"{MAX_PARAMETER:g} overflow float32 arithmetic)")
    model = HopeTransformer(config)
    params = _parameters(model)
    with torch.no_grad():
        for key, tensor in tensors.items():
            params[key].copy_(tensor)
    model = model.to(resolve_device(device)).eval()
    model.checkpoint_metadata = user_metadata
    return model


def model_from_source(checkpoint, preset: str, seed: int, device: str):
    """The model a command or the dashboard runs: a checkpoint when given, else a seeded random-init
    preset. Returns (model in eval mode, a short description for summaries)."""
    if checkpoint is not None:
        return load_checkpoint(checkpoint, device=device), f"checkpoint {Path(checkpoint).name}"
    model = HopeTransformer.from_preset(preset, device=device, seed=seed).eval()
    return model, f"preset {preset}, random init (seed {seed})"
