"""Reading untrusted safetensors files (checkpoints, recordings) without ever unpickling anything."""
from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors_bytes

MAX_HEADER_BYTES = 64 << 20
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_bytes(source, max_bytes: int, error: type[Exception]) -> tuple[bytes, str]:
    """The file's bytes (or the given bytes, e.g. an upload) and a short name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "uploaded file"
    path = Path(source)
    if not path.is_file():
        raise error(f"{path}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise error(f"{path.name}: file is {size} bytes, more than the {max_bytes} byte limit")
    return path.read_bytes(), path.name


def parse_header(data: bytes, name: str, error: type[Exception]) -> tuple[dict, int]:
    """(header dict, length of the data section); every malformed case raises ``error`` with one line."""
    if len(data) < 8:
        raise error(f"{name}: not a safetensors file (only {len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(len(data) - 8, MAX_HEADER_BYTES):
        raise error(f"{name}: not a safetensors file (header length {header_len} does not fit the file)")
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise error(f"{name}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise error(f"{name}: not a safetensors file (header is not a JSON object)")
    return header, len(data) - 8 - header_len


def check_entry(header: dict, key: str, name: str, data_len: int, error: type[Exception],
                shape=None, dtype=None) -> tuple:
    """Validate one tensor's header entry (and optionally its shape / dtype); returns its shape."""
    entry = header.get(key)
    if not isinstance(entry, dict):
        raise error(f"{name}: missing tensor {key!r}")
    if dtype is not None and entry.get("dtype") != dtype:
        raise error(f"{name}: tensor {key!r} has dtype {entry.get('dtype')}, expected {dtype}")
    found = tuple(entry.get("shape", ()))
    if shape is not None and found != tuple(shape):
        raise error(f"{name}: tensor {key!r} has shape {list(found)}, expected {list(shape)}")
    offsets = entry.get("data_offsets", (None, None))
    numel = 1
    for s in found:
        numel *= s
    ok = (isinstance(offsets, (list, tuple)) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
          and entry.get("dtype") in DTYPE_SIZES and 0 <= offsets[0] <= offsets[1] <= data_len
          and offsets[1] - offsets[0] == numel * DTYPE_SIZES[entry["dtype"]])
    if not ok:
        raise error(f"{name}: tensor {key!r} data lies outside the file (truncated or damaged)")
    return found


def parse_tagged(data: bytes, name: str, error: type[Exception], fmt: str, version: str, what: str):
    """Parse the header and check our format tag: (tensor entries, data length, metadata dict)."""
    header, data_len = parse_header(data, name, error)
    meta = header.pop("__metadata__", None) or {}
    if meta.get("format") != fmt:
        raise error(f"{name}: not a nested_learning {what} (metadata 'format' is {meta.get('format')!r})")
    if meta.get("format_version") != version:
        raise error(f"{name}: unsupported {what} format_version {meta.get('format_version')!r} (this version reads {version!r})")
    return header, data_len, meta


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves a half-written file behind."""
    path = Path(path)
    data = save_safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; a saved model or recording is an ordinary file
    os.replace(tmp, path)
    return path
