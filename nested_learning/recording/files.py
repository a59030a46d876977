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
from ..safe_files import check_entry, check_tiling, parse_json, parse_tagged, read_bytes, short, write_safetensors
from ..shapes import cms_parameter_shapes
from .recording import FORMAT, FORMAT_VERSION, Recording, RecordingError
from .streams import MEMORY_STREAMS

MAX_BYTES = 2 << 30
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
# Every tensor name a recording may hold, with the shape it must have given the config c and T tokens
# (None = any length). Layer and level indices are checked against the config too, so a file cannot
# name more of them than its model has.
_LAYER = r"layers\.(?P<layer>0|[1-9]\d{0,2})\."  # no leading zeros: one name per layer
_PATTERNS = [
    (r"tokens", lambda c, T: (T,)),
    (r"loss", lambda c, T: (T,)),
    (r"topk\.(ids|probs)", lambda c, T: (T, None)),
    (_LAYER + r"memory\.(surprise|gate_surprise|learning_rate|retention|write_norm|memory_norm|momentum_gate)",
     lambda c, T: (T, c.n_memory_heads)),
    (_LAYER + r"memory\.keys", lambda c, T: (T, c.n_memory_heads, c.memory_key_dim)),  # unit keys' alternative
    (_LAYER + r"memory\.(unit_keys|writes|values)", lambda c, T: (T, c.n_memory_heads, c.memory_head_dim)),  # values: optional
    (_LAYER + r"memory\.initial\.(memory|momentum)", lambda c, T: (c.n_memory_heads, c.memory_head_dim, c.memory_key_dim)),
    (r"full\." + _LAYER + r"memory\.memory", lambda c, T: (T, c.n_memory_heads, c.memory_head_dim, c.memory_key_dim)),
    (_LAYER + r"cms\.input", lambda c, T: (T, c.d_model)),
    (_LAYER + r"cms\.initial\.(?P<level>0|[1-9]\d?)\.(memory|pending)", lambda c, T: (c.d_model, c.cms_hidden)),
    (_LAYER + r"cms\.initial\.(?P<level>0|[1-9]\d?)\.previous_input", lambda c, T: (c.d_model,)),
    (_LAYER + r"cms\.params\.(?P<param>.+)", None),  # the shape of the config's CMS parameter of that name
    (_LAYER + r"attention\.weights", lambda c, T: (c.n_heads, T, None)),
]
# What one layer's memory (or CMS) must hold once any of it is there: what the readers rebuild from.
_MEMORY_GROUP = {f"memory.{n}" for n in (*MEMORY_STREAMS, "writes", "initial.memory")}
_MOMENTUM_PAIR = {"memory.momentum_gate", "memory.initial.momentum"}


def _cms_group(config: HopeConfig) -> set[str]:
    levels = range(len(config.cms_periods))
    return ({"cms.input"} | {f"cms.params.{n}" for n in cms_parameter_shapes(config)}
            | {f"cms.initial.{j}.{n}" for j in levels for n in ("memory", "pending", "previous_input")})


def save_recording(recording: Recording, path: str | os.PathLike) -> Path:
    """Write ``recording`` atomically; one :func:`load_recording` would refuse (non-finite values) is
    refused here with RecordingError, before anything is written."""
    bad = non_finite_tensor(recording.tensors)
    if bad is not None:
        raise RecordingError(f"not saved: tensor {bad!r} has non-finite values")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": recording.config.to_json(),
              "text": json.dumps(recording.text), "ablation": json.dumps(recording.ablation.names_off()),
              "start_position": str(recording.start_position), "meta": json.dumps(recording.meta, sort_keys=True)}
    return write_safetensors(path, recording.tensors, header)


def non_finite_tensor(tensors: dict[str, torch.Tensor]) -> str | None:
    """The first tensor name holding a NaN or inf, else None (the last token's loss is NaN by design)."""
    for key, tensor in tensors.items():
        values = tensor[:-1] if key == "loss" else tensor
        if tensor.is_floating_point() and not torch.isfinite(values).all():
            return key
    return None


def _expected_shape(name: str, config: HopeConfig, T: int, cms: dict):
    """(known, shape) of a tensor name, ``cms`` being the config's CMS parameter shapes; None in a shape
    accepts any length."""
    for pattern, shape in _PATTERNS:
        match = re.fullmatch(pattern, name)
        if match is None:
            continue
        groups = match.groupdict()
        if ((groups.get("layer") is not None and int(groups["layer"]) >= config.n_layers)
                or (groups.get("level") is not None and int(groups["level"]) >= len(config.cms_periods))
                or (groups.get("param") is not None and groups["param"] not in cms)):
            return False, None
        return True, cms[groups["param"]] if shape is None else shape(config, T)
    return False, None


def _metadata(meta: dict, name: str):
    """(config, text, ablation, start position, extra) from the file's metadata strings."""
    config = parse_json(meta.get("config", "null"), name, "config", RecordingError)
    try:
        config = HopeConfig.from_dict(config)
    except (ValueError, TypeError) as e:
        raise RecordingError(f"{name}: bad metadata: {e}") from None
    text = parse_json(meta.get("text", "null"), name, "text", RecordingError)
    ablation = parse_json(meta.get("ablation", "[]"), name, "ablation", RecordingError)
    extra = parse_json(meta.get("meta", "{}"), name, "meta", RecordingError)
    start_position = meta.get("start_position", "0")
    if not (text is None or isinstance(text, str)):
        raise RecordingError(f"{name}: bad metadata: text must be a string or null")
    if not isinstance(ablation, list) or not all(isinstance(n, str) and len(n) <= 40 for n in ablation):
        raise RecordingError(f"{name}: bad metadata: ablation must be a list of names")
    if not isinstance(extra, dict):
        raise RecordingError(f"{name}: bad metadata: meta must be a JSON object")
    if not re.fullmatch(r"[0-9]{1,18}", start_position):
        raise RecordingError(f"{name}: bad metadata: start_position must be a count of tokens, got {short(start_position)}")
    try:
        ablation = Ablation.from_names(ablation)
    except ValueError as e:
        raise RecordingError(f"{name}: bad metadata: {e}") from None
    return config, text, ablation, int(start_position), extra


def load_recording(source) -> Recording:
    """Read a recording (path or bytes); a damaged or foreign file raises RecordingError (one line).

    The header is checked against the config by arithmetic (names, layer and level indices, shapes,
    dtypes, complete groups) before any tensor is read."""
    data, name = read_bytes(source, MAX_BYTES, RecordingError)
    header, data_len, meta = parse_tagged(data, name, RecordingError, FORMAT, FORMAT_VERSION, "recording")
    config, text, ablation, start_position, extra = _metadata(meta, name)
    T = check_entry(header, "tokens", name, data_len, RecordingError, dtype="I64")
    if len(T) != 1:
        raise RecordingError(f"{name}: tensor 'tokens' must be one-dimensional")
    T = T[0]
    cms = cms_parameter_shapes(config)
    for key in header:
        known, shape = _expected_shape(key, config, T, cms)
        if not known:
            raise RecordingError(f"{name}: unexpected tensor {short(key)}")
        found = check_entry(header, key, name, data_len, RecordingError, dtype="I64" if key in ("tokens", "topk.ids") else None)
        if key not in ("tokens", "topk.ids") and header[key]["dtype"] not in FLOAT_DTYPES:
            raise RecordingError(f"{name}: tensor {short(key)} has dtype {header[key]['dtype']}, expected a float type")
        if shape is not None and (len(found) != len(shape) or any(s is not None and s != f for s, f in zip(shape, found))):
            raise RecordingError(f"{name}: tensor {short(key)} has shape {list(found)}, expected {['*' if s is None else s for s in shape]}")
    for key in ("loss", "topk.ids", "topk.probs"):
        check_entry(header, key, name, data_len, RecordingError)
    k = header["topk.ids"]["shape"][1]
    if header["topk.probs"]["shape"][1] != k or not 1 <= k <= config.vocab_size:
        raise RecordingError(f"{name}: topk.ids and topk.probs must both keep k in [1, {config.vocab_size}] predictions")
    _check_groups(header, config, name)
    check_tiling(header, name, data_len, RecordingError)
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as e:  # the safetensors parser's own checks
        raise RecordingError(f"{name}: damaged safetensors data ({(str(e).splitlines() or [type(e).__name__])[0][:200]})") from None
    bad = non_finite_tensor(tensors)
    if bad is not None:
        raise RecordingError(f"{name}: tensor {bad!r} has non-finite values")
    for key in ("tokens", "topk.ids"):
        ids = tensors[key]
        if ids.numel() and (ids.min() < 0 or ids.max() >= config.vocab_size):
            raise RecordingError(f"{name}: token ids out of range" + ("" if key == "tokens" else f" in {key!r}"))
    return Recording(config, tensors, text, ablation, start_position, extra)


def _check_groups(header: dict, config: HopeConfig, name: str) -> None:
    """A layer's memory or CMS tensors, once any is there, must all be there (what the readers rebuild from)."""
    layers: dict[str, set[str]] = {}
    for key in header:
        match = re.fullmatch(r"(full\.)?layers\.(\d+)\.(.+)", key)
        if match:
            layers.setdefault(match[2], set()).add((match[1] or "") + match[3])
    cms_group = _cms_group(config)
    for layer, present in layers.items():
        memory = {n for n in present if n.startswith("memory.")}
        keys = "memory.keys" if "memory.keys" in memory else "memory.unit_keys"  # older files hold the keys
        required = _MEMORY_GROUP | {keys} | (_MOMENTUM_PAIR if memory & _MOMENTUM_PAIR else set())
        if memory and required - memory:
            raise RecordingError(f"{name}: layer {layer}'s memory lacks tensor 'layers.{layer}.{sorted(required - memory)[0]}'")
        if "full.memory.memory" in present and not memory:
            raise RecordingError(f"{name}: layer {layer} has full memory states but no memory streams")
        cms = {n for n in present if n.startswith("cms.")}
        if cms and cms_group - cms:
            raise RecordingError(f"{name}: layer {layer}'s CMS lacks tensor 'layers.{layer}.{sorted(cms_group - cms)[0]}'")
