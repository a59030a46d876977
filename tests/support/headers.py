"""Editing the JSON header of a safetensors file (checkpoints, recordings) for the damaged-file tests."""
import json
import struct


def split(data: bytes) -> tuple[bytes, bytes]:
    """(raw header, data section) of a well-formed file."""
    (n,) = struct.unpack("<Q", data[:8])
    return data[8:8 + n], data[8 + n:]


def read_header(path) -> dict:
    return json.loads(split(path.read_bytes())[0])


def with_raw_header(path, out, raw: bytes):
    """``path``'s data section under the header bytes ``raw``."""
    out.write_bytes(struct.pack("<Q", len(raw)) + raw + split(path.read_bytes())[1])
    return out


def rewrite_header(path, out, edit):
    """``path`` with ``edit(header dict)`` applied to its header (padded to 8 bytes, as safetensors writes)."""
    header = read_header(path)
    edit(header)
    raw = json.dumps(header).encode()
    return with_raw_header(path, out, raw + b" " * ((8 - len(raw) % 8) % 8))
