"""Reading untrusted safetensors files (checkpoints, recordings) without ever unpickling anything."""
from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors_bytes

# Limits on the JSON header, so that parsing it costs bounded time and memory whatever it holds. A
# 128-layer model's checkpoint header is about 2.5 MB; a recording's adds its text (escaped twice).
MAX_HEADER_BYTES = 8 << 20
MAX_JSON_CONTAINERS = 1 << 18  # "{" plus "[" bytes, strings included (a real header has < 60,000): bounds what is built
MAX_JSON_SEPARATORS = 1 << 18  # "," plus ":" bytes, strings included (a 128-layer header has < 50,000): bounds the values
MAX_JSON_DEPTH = 32  # objects and arrays inside one another
MAX_NUMBER_CHARS = 32  # digits of an integer literal: an int64 has at most 20
# One JSON string: a recording's text, escaped twice, is the longest (at most 7 characters a byte, so a
# session's 16,384 tokens take 115,000; the shipped checkpoint's metadata is 57,000). Longer is refused.
MAX_JSON_STRING = 1 << 21
MAX_RANK, MAX_DIM = 8, 1 << 40  # a tensor's dimensions; the byte count is checked against the file too
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_bytes(source, max_bytes: int, error: type[Exception]) -> tuple[bytes, str]:
    """The file's bytes (or the given bytes, e.g. an upload) and a short name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "uploaded file"
    path = Path(source)
    name = path.name if path.name.isprintable() else ascii(path.name)  # one line, whatever the name holds
    if not path.is_file():
        raise error(f"{path if str(path).isprintable() else ascii(str(path))}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise error(f"{name}: file is {size} bytes, more than the {max_bytes} byte limit")
    return path.read_bytes(), name


def short(value) -> str:
    """A value for a one-line message: repr (no raw newlines), cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _NumberTooLong(ValueError):
    pass


def _parse_int(literal: str) -> int:
    # int() of a long digit string costs quadratic time (Python's own limit can be switched off); a
    # float literal of any length parses in linear time (an overlong one is just inf), so needs no hook.
    if len(literal) > MAX_NUMBER_CHARS:
        raise _NumberTooLong
    return int(literal)


def _exceeds_limits(value, name: str, what: str, error: type[Exception]) -> None:
    """Walk a parsed value (no recursion: a stack of containers) and refuse one nested more than
    MAX_JSON_DEPTH deep or holding a string longer than MAX_JSON_STRING. Costs one visit per value, no
    copy of the text (a regex over the text cost 120 bytes per character of one long string)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if len(item) > MAX_JSON_STRING:
                raise error(f"{name}: {what} has a string of {len(item)} characters, more than {MAX_JSON_STRING}")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise error(f"{name}: {what} is nested more than {MAX_JSON_DEPTH} levels deep")
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)


def parse_json(text: str, name: str, what: str, error: type[Exception]):
    """``json.loads`` within the limits above (``text``: the header, or a string inside it, so at most
    MAX_HEADER_BYTES long); anything malformed raises ``error`` with one line. Memory stays proportional
    to ``text``: the containers are counted before parsing, depth and strings checked on the result."""
    if text.count("{") + text.count("[") > MAX_JSON_CONTAINERS:  # before parsing: the count bounds its memory
        raise error(f"{name}: {what} holds more than {MAX_JSON_CONTAINERS} JSON objects and arrays")
    if text.count(",") + text.count(":") > MAX_JSON_SEPARATORS:  # each value costs ~50 bytes once parsed
        raise error(f"{name}: {what} holds more than {MAX_JSON_SEPARATORS} JSON values")
    try:
        value = json.loads(text, parse_int=_parse_int)
    except _NumberTooLong:
        raise error(f"{name}: {what} has a number longer than {MAX_NUMBER_CHARS} characters") from None
    except RecursionError:  # the parser's own depth limit, far above ours
        raise error(f"{name}: {what} is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:  # JSONDecodeError
        raise error(f"{name}: {what} is not valid JSON") from None
    _exceeds_limits(value, name, what, error)
    return value


def parse_header(data: bytes, name: str, error: type[Exception]) -> tuple[dict, int]:
    """(header dict, length of the data section); every malformed case raises ``error`` with one line."""
    if len(data) < 8:
        raise error(f"{name}: not a safetensors file (only {len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise error(f"{name}: not a safetensors file (header length {header_len} does not fit the file)")
    if header_len > MAX_HEADER_BYTES:
        raise error(f"{name}: header is {header_len} bytes, more than the {MAX_HEADER_BYTES} byte limit")
    try:
        text = data[8:8 + header_len].decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{name}: not a safetensors file (header is not JSON)") from None
    header = parse_json(text, name, "header", error)
    if not isinstance(header, dict):
        raise error(f"{name}: not a safetensors file (header is not a JSON object)")
    return header, len(data) - 8 - header_len


def check_entry(header: dict, key: str, name: str, data_len: int, error: type[Exception],
                shape=None, dtype=None) -> tuple:
    """Validate one tensor's header entry (and optionally its shape / dtype); returns its shape."""
    entry = header.get(key)
    if not isinstance(entry, dict):
        raise error(f"{name}: missing tensor {short(key)}" if entry is None else f"{name}: tensor {short(key)} is not a JSON object")
    found_dtype = entry.get("dtype")
    known = isinstance(found_dtype, str) and found_dtype in DTYPE_SIZES
    if dtype is not None and found_dtype != dtype:
        raise error(f"{name}: tensor {short(key)} has dtype {found_dtype if known else short(found_dtype)}, expected {dtype}")
    if not known:
        raise error(f"{name}: tensor {short(key)} has unsupported dtype {short(found_dtype)}")
    found = entry.get("shape")
    if (not isinstance(found, list) or len(found) > MAX_RANK
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_DIM for s in found)):
        raise error(f"{name}: tensor {short(key)} has a malformed shape {short(found)}")
    found = tuple(found)
    if shape is not None and found != tuple(shape):
        raise error(f"{name}: tensor {short(key)} has shape {list(found)}, expected {list(shape)}")
    offsets = entry.get("data_offsets")
    numel = 1
    for s in found:
        numel *= s
    ok = (isinstance(offsets, list) and len(offsets) == 2
          and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
          and 0 <= offsets[0] <= offsets[1] <= data_len and offsets[1] - offsets[0] == numel * DTYPE_SIZES[found_dtype])
    if not ok:
        raise error(f"{name}: tensor {short(key)} data lies outside the file (truncated or damaged)")
    return found


def check_tiling(header: dict, name: str, data_len: int, error: type[Exception]) -> None:
    """The checked entries' byte ranges must tile the data section exactly: no shared bytes, no gaps
    (so the tensors a file claims can take no more memory than the file has)."""
    end = 0
    for start, stop in sorted(entry["data_offsets"] for entry in header.values()):
        if start != end:
            raise error(f"{name}: tensor data overlaps or leaves gaps (damaged file)")
        end = stop
    if end != data_len:
        raise error(f"{name}: tensor data ends at byte {end} of a {data_len} byte data section (damaged file)")


def parse_tagged(data: bytes, name: str, error: type[Exception], fmt: str, version: str, what: str):
    """Parse the header and check our format tag: (tensor entries, data length, metadata dict)."""
    header, data_len = parse_header(data, name, error)
    meta = header.pop("__metadata__", None)
    meta = {} if meta is None else meta
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise error(f"{name}: not a nested_learning {what} (__metadata__ is not a JSON object of strings)")
    if meta.get("format") != fmt:
        raise error(f"{name}: not a nested_learning {what} (metadata 'format' is {short(meta.get('format'))})")
    if meta.get("format_version") != version:
        raise error(f"{name}: unsupported {what} format_version {short(meta.get('format_version'))} (this version reads {version!r})")
    return header, data_len, meta


def write_safetensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves a half-written file behind."""
    if os.fspath(path).endswith(("/", os.sep)) or Path(path).is_dir():  # before any temp file is made
        raise IsADirectoryError(f"{os.fspath(path)} is a folder: name the file to write")
    path = Path(path)
    data = save_safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a saved model or recording is an ordinary file
        os.replace(tmp, path)
    except BaseException:  # a full disk, a folder in the way, an interrupt: no half-written temp file stays
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
