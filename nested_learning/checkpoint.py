"""Checkpoints: safetensors with the config and a format version in the file's metadata.

Loading validates size, header, format, config, key set, shapes, dtypes and finiteness before the
model is built, and raises :class:`CheckpointError` with one line naming the problem. Nothing is
unpickled: a checkpoint is data only.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .config import HopeConfig
from .device import resolve_device
from .model import HopeTransformer

FORMAT = "nested_learning.checkpoint"
FORMAT_VERSION = "1"
MAX_BYTES = 1 << 30  # 1 GiB: far above any model this tool trains
MAX_HEADER_BYTES = 16 << 20
DTYPE_NAMES = {torch.float32: "F32"}
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message is one line naming the problem."""


def _parameters(model: HopeTransformer) -> dict[str, torch.Tensor]:
    # named_parameters() lists a tied weight once, so the file holds no duplicate storage.
    return dict(model.named_parameters())


def save_checkpoint(model: HopeTransformer, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write the model's parameters and config atomically; ``metadata`` must be JSON-serialisable."""
    path = Path(path)
    tensors = {name: p.detach().to("cpu", torch.float32).contiguous() for name, p in _parameters(model).items()}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config.to_json(),
              "metadata": json.dumps(metadata or {}, sort_keys=True)}
    data = save_safetensors_bytes(tensors, metadata=header)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def _read_bytes(source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "uploaded file"
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise CheckpointError(f"{path.name}: file is {size} bytes, more than the {MAX_BYTES} byte limit")
    return path.read_bytes(), path.name


def _parse_header(data: bytes, name: str) -> dict:
    if len(data) < 8:
        raise CheckpointError(f"{name}: not a safetensors file (only {len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(len(data) - 8, MAX_HEADER_BYTES):
        raise CheckpointError(f"{name}: not a safetensors file (header length {header_len} does not fit the file)")
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{name}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: not a safetensors file (header is not a JSON object)")
    return header


def read_checkpoint_info(source) -> tuple[HopeConfig, dict, dict]:
    """Validate the header of a checkpoint (path or bytes) without loading tensors.

    Returns (config, user metadata, tensor header entries)."""
    data, name = _read_bytes(source)
    return _validate_header(data, name)[:3]


def _validate_header(data: bytes, name: str):
    header = _parse_header(data, name)
    meta = header.pop("__metadata__", None) or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a nested_learning checkpoint (metadata 'format' is {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{name}: unsupported format_version {meta.get('format_version')!r} (this version reads {FORMAT_VERSION!r})")
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
    data_len = len(data) - 8 - struct.unpack("<Q", data[:8])[0]
    for key, (shape, dtype) in expected.items():
        entry = header[key]
        if not isinstance(entry, dict):
            raise CheckpointError(f"{name}: tensor {key!r} has a malformed header entry")
        if entry.get("dtype") != dtype:
            raise CheckpointError(f"{name}: tensor {key!r} has dtype {entry.get('dtype')}, expected {dtype}")
        if tuple(entry.get("shape", ())) != shape:
            raise CheckpointError(f"{name}: tensor {key!r} has shape {list(entry.get('shape', []))}, expected {list(shape)}")
        start, end = entry.get("data_offsets", (None, None))
        numel = 1
        for s in shape:
            numel *= s
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= data_len
                and end - start == numel * DTYPE_SIZES[dtype]):
            raise CheckpointError(f"{name}: tensor {key!r} data lies outside the file (truncated or damaged)")
    return config, user_metadata, header, expected


def load_checkpoint(source, device: str | torch.device = "auto") -> HopeTransformer:
    """Load a checkpoint (path or bytes) into a new model in eval mode on ``device``.

    The checkpoint's user metadata is attached as ``model.checkpoint_metadata``."""
    data, name = _read_bytes(source)
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
