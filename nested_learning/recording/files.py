"""Recording files: one .safetensors with the streams and JSON metadata (config, text, ablation, versions)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors_bytes

from ..ablation import Ablation
from ..config import HopeConfig
from ..safe_files import check_entry, parse_tagged, read_bytes, write_safetensors
from .recording import FORMAT, FORMAT_VERSION, Recording, RecordingError

MAX_BYTES = 2 << 30
# Every tensor name a recording may hold, with the shape it must have (T tokens, H heads, d head
# width, D model width, k top-k, E events, None = any).
_PATTERNS = [
    (r"tokens", lambda c, T: (T,)),
    (r"loss", lambda c, T: (T,)),
    (r"topk\.(ids|probs)", lambda c, T: (T, None)),
    (r"layers\.\d+\.memory\.(surprise|gate_surprise|learning_rate|retention|write_norm|memory_norm|momentum_gate)",
     lambda c, T: (T, c.n_heads)),
    (r"layers\.\d+\.memory\.(keys|writes)", lambda c, T: (T, c.n_heads, c.head_dim)),
    (r"layers\.\d+\.memory\.initial\.(memory|momentum)", lambda c, T: (c.n_heads, c.head_dim, c.head_dim)),
    (r"full\.layers\.\d+\.memory\.memory", lambda c, T: (T, c.n_heads, c.head_dim, c.head_dim)),
    (r"layers\.\d+\.cms\.input", lambda c, T: (T, c.d_model)),
    (r"layers\.\d+\.cms\.initial\.\d+\.(memory|pending)", lambda c, T: (c.d_model, c.cms_hidden)),
    (r"layers\.\d+\.cms\.initial\.\d+\.previous_input", lambda c, T: (c.d_model,)),
    (r"layers\.\d+\.cms\.params\..+", lambda c, T: None),
    (r"layers\.\d+\.attention\.weights", lambda c, T: (c.n_heads, T, None)),
]


def save_recording(recording: Recording, path: str | os.PathLike) -> Path:
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": recording.config.to_json(),
              "text": json.dumps(recording.text), "ablation": json.dumps(recording.ablation.names_off()),
              "start_position": str(recording.start_position), "meta": json.dumps(recording.meta, sort_keys=True)}
    return write_safetensors(path, recording.tensors, header)


def _expected_shape(name: str, config: HopeConfig, T: int):
    for pattern, shape in _PATTERNS:
        if re.fullmatch(pattern, name):
            return True, shape(config, T)
    return False, None


def load_recording(source) -> Recording:
    """Read a recording (path or bytes); a damaged or foreign file raises RecordingError (one line)."""
    data, name = read_bytes(source, MAX_BYTES, RecordingError)
    header, data_len, meta = parse_tagged(data, name, RecordingError, FORMAT, FORMAT_VERSION, "recording")
    try:
        config = HopeConfig.from_dict(json.loads(meta.get("config", "")))
        text = json.loads(meta.get("text", "null"))
        ablation = Ablation.from_names(json.loads(meta.get("ablation", "[]")))
        start_position = int(meta.get("start_position", "0"))
        extra = json.loads(meta.get("meta", "{}"))
    except (ValueError, TypeError) as e:
        raise RecordingError(f"{name}: bad metadata: {e}") from None
    T = check_entry(header, "tokens", name, data_len, RecordingError, dtype="I64")
    if len(T) != 1:
        raise RecordingError(f"{name}: tensor 'tokens' must be one-dimensional")
    T = T[0]
    for key in header:
        known, shape = _expected_shape(key, config, T)
        if not known:
            raise RecordingError(f"{name}: unexpected tensor {key!r}")
        found = check_entry(header, key, name, data_len, RecordingError)
        if shape is not None and (len(found) != len(shape) or any(s is not None and s != f for s, f in zip(shape, found))):
            raise RecordingError(f"{name}: tensor {key!r} has shape {list(found)}, expected {['*' if s is None else s for s in shape]}")
    for key in ("loss", "topk.ids", "topk.probs"):
        check_entry(header, key, name, data_len, RecordingError)
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as e:  # the safetensors parser's own checks
        raise RecordingError(f"{name}: damaged safetensors data ({str(e).splitlines()[0][:200]})") from None
    for key, tensor in tensors.items():
        values = tensor[:-1] if key == "loss" else tensor  # the last token has no next-token loss
        if tensor.is_floating_point() and not torch.isfinite(values).all():
            raise RecordingError(f"{name}: tensor {key!r} has non-finite values")
    if tensors["tokens"].numel() and (tensors["tokens"].min() < 0 or tensors["tokens"].max() >= config.vocab_size):
        raise RecordingError(f"{name}: token ids out of range")
    return Recording(config, tensors, text, ablation, start_position, extra)
