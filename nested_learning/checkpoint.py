"""Checkpoints: safetensors with the config and a format version in the file's metadata.

Loading validates size, header, format, config, key set, shapes, dtypes and finiteness before the
model is built, and raises :class:`CheckpointError` with one line naming the problem. Nothing is
unpickled: a checkpoint is data only.
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
from .safe_files import check_entry, parse_tagged, read_bytes, write_safetensors

FORMAT = "nested_learning.checkpoint"
FORMAT_VERSION = "1"
MAX_BYTES = 1 << 30  # 1 GiB: far above any model this tool trains
DTYPE_NAMES = {torch.float32: "F32"}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message is one line naming the problem."""


def _parameters(model: HopeTransformer) -> dict[str, torch.Tensor]:
    # named_parameters() lists a tied weight once, so the file holds no duplicate storage.
    return dict(model.named_parameters())


def save_checkpoint(model: HopeTransformer, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write the model's parameters and config atomically; ``metadata`` must be JSON-serialisable."""
    tensors = {name: p.detach().to("cpu", torch.float32).contiguous() for name, p in _parameters(model).items()}
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
    try:
        config = HopeConfig.from_dict(json.loads(meta.get("config", "")))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{name}: bad config: {e}") from None
    try:
        user_metadata = json.loads(meta.get("metadata", "{}"))
    except json.JSONDecodeError:
        raise CheckpointError(f"{name}: metadata is not valid JSON") from None
    with torch.device("meta"):  # shapes only: nothing is allocated
        expected = {k: (tuple(v.shape), DTYPE_NAMES[v.dtype]) for k, v in _parameters(HopeTransformer(config)).items()}
    missing = sorted(set(expected) - set(header))
    if missing:
        raise CheckpointError(f"{name}: missing tensor {missing[0]!r} for this config" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    unexpected = sorted(set(header) - set(expected))
    if unexpected:
        raise CheckpointError(f"{name}: unexpected tensor {unexpected[0]!r} for this config")
    for key, (shape, dtype) in expected.items():
        check_entry(header, key, name, data_len, CheckpointError, shape=shape, dtype=dtype)
    return config, user_metadata, header, expected


def load_checkpoint(source, device: str | torch.device = "auto") -> HopeTransformer:
    """Load a checkpoint (path or bytes) into a new model in eval mode on ``device``.

    The checkpoint's user metadata is attached as ``model.checkpoint_metadata``."""
    data, name = read_bytes(source, MAX_BYTES, CheckpointError)
    config, user_metadata, _, _ = _validate_header(data, name)
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as e:  # the safetensors parser's own checks
        raise CheckpointError(f"{name}: damaged safetensors data ({str(e).splitlines()[0][:200]})") from None
    for key, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{name}: tensor {key!r} has non-finite values (NaN or inf)")
    model = HopeTransformer(config)
    params = _parameters(model)
    with torch.no_grad():
        for key, tensor in tensors.items():
            params[key].copy_(tensor)
    model = model.to(resolve_device(device)).eval()
    model.checkpoint_metadata = user_metadata
    return model
