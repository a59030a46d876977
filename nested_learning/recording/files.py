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
from . import streams
from .recording import FORMAT, FORMAT_VERSION, Recording, RecordingError

MAX_BYTES = 2 << 30
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")


def _group(kept: str) -> list[str]:
    """The table's names kept as ``kept``, within their layer ("memory.surprise", "cms.initial.{j}.memory", ...)."""
    return [s.name.removeprefix("layers.{i}.") for s in streams.STREAMS if s.kept == kept]


# What one layer's memory (or CMS) must hold once any of it is there: what the readers rebuild from.
_MEMORY_GROUP = set(_group("memory"))
_KEYS = _group("keys")  # one of them: the unit keys, or (older files, a GPU's rounding) the keys
_WRITE = _group("write")  # one of them: the errors, or (older files) the writes
_MOMENTUM_PAIR = set(_group("momentum"))
_DEEP = set(_group("deep")) | set(_group("values"))  # depth 2: its errors cannot rebuild the values
_STEP = set(_group("step"))  # depth 2 or damped momentum: the writes' rate is not the learning rate
_DEEP_MOMENTUM = set(_group("deep_momentum"))


def _cms_group(config: HopeConfig) -> set[str]:
    names = set()
    lm = config.cms_objective == "lm"  # its levels' weights after each update, which no replay recomputes
    for name in _group("cms") + (_group("lm") if lm else []):
        names |= ({name.format(param=p) for p in cms_parameter_shapes(config)} if "{param}" in name
                  else {name.format(j=j) for j in range(len(config.cms_periods))})
    return names


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


def _expected(name: str, config: HopeConfig, T: int, cms: dict) -> tuple[streams.Stream, tuple] | None:
    """The table's row for a tensor name and the shape it must have (None in it: any length), ``cms`` being
    the config's CMS parameter shapes; None for a name the table lacks or whose layer, level or parameter
    the config does not have (so a file cannot name more of them than its model has)."""
    found = streams.find(name)
    if found is None:
        return None
    stream, index = found
    if config.memory_depth == 1 and (stream.kept in ("deep", "deep_momentum") or stream.name.endswith(".hidden_memory")):
        return None
    if stream.kept == "step" and not _has_step(config):
        return None
    if stream.kept == "lm" and config.cms_objective != "lm":
        return None
    if (("layer" in index and int(index["layer"]) >= config.n_layers)
            or ("level" in index and int(index["level"]) >= len(config.cms_periods))
            or ("param" in index and index["param"] not in cms)):
        return None
    return stream, stream.shape_for(config, T, cms.get(index.get("param")))


def _metadata(meta: dict, name: str):
    """(config, text, ablation, start position, extra) from the file's metadata strings."""
    config = parse_json(meta.get("config", "null"), name, "config", RecordingError)
    try:
        config = HopeConfig.from_saved(config)
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
        expected = _expected(key, config, T, cms)
        if expected is None:
            raise RecordingError(f"{name}: unexpected tensor {short(key)}")
        stream, shape = expected
        integer = stream.dtype == "int64"
        found = check_entry(header, key, name, data_len, RecordingError, dtype="I64" if integer else None)
        if not integer and header[key]["dtype"] not in FLOAT_DTYPES:
            raise RecordingError(f"{name}: tensor {short(key)} has dtype {header[key]['dtype']}, expected a float type")
        if len(found) != len(shape) or any(s is not None and s != f for s, f in zip(shape, found)):
            raise RecordingError(f"{name}: tensor {short(key)} has shape {list(found)}, expected {['*' if s is None else s for s in shape]}")
    for key in _group("always"):
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
    for key in (k for k in tensors if k.endswith(".tokens") and streams.find(k)[0].kept == "lm"):
        updates = tensors[key]  # an lm level's update tokens: increasing, inside the recording, one per weights
        if updates.numel() and (updates.min() < 0 or updates.max() >= T or (updates.diff() <= 0).any()):
            raise RecordingError(f"{name}: tensor {key!r} must hold increasing token indices in [0, {T})")
        if updates.shape[0] != tensors[key.removesuffix("tokens") + "memory"].shape[0]:
            raise RecordingError(f"{name}: tensors {key!r} and its memory must count the same updates")
    return Recording(config, tensors, text, ablation, start_position, extra)


def _has_step(config: HopeConfig) -> bool:
    """Whether the memory's writes take a rate of their own (``write_rate``)."""
    return config.memory_depth > 1 or (config.momentum and config.momentum_dampening)


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
        keys = next((n for n in _KEYS if n in memory), _KEYS[0])
        write = next((n for n in _WRITE if n in memory), _WRITE[0])
        momentum = bool(memory & _MOMENTUM_PAIR)
        required = (_MEMORY_GROUP | {keys, write} | (_MOMENTUM_PAIR if momentum else set())
                    | (_DEEP if config.memory_depth > 1 else set())
                    | (_STEP if config.memory_depth > 1 or (momentum and config.momentum_dampening) else set())
                    | (_DEEP_MOMENTUM if momentum and config.memory_depth > 1 else set()))
        if memory and required - memory:
            raise RecordingError(f"{name}: layer {layer}'s memory lacks tensor 'layers.{layer}.{sorted(required - memory)[0]}'")
        if {"full.memory.memory", "full.memory.hidden_memory"} & present and not memory:
            raise RecordingError(f"{name}: layer {layer} has full memory states but no memory streams")
        cms = {n for n in present if n.startswith("cms.")}
        if cms and cms_group - cms:
            raise RecordingError(f"{name}: layer {layer}'s CMS lacks tensor 'layers.{layer}.{sorted(cms_group - cms)[0]}'")
