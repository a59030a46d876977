"""Exact resume: model, optimizer, schedule position, data position and RNG state in one file.

``<out>.resume.safetensors`` holds the tensors (parameters, AdamW moments and step counts, RNG
states, the data packer's pending bytes); its metadata holds the scalars as JSON (step, tokens,
optimizer hyper-parameters, data counters, the run's settings). Nothing is pickled. The learning
rate is a pure function of the step (trainer.learning_rate), so the step is the scheduler's whole state.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from ..safe_files import write_safetensors

FORMAT = "nested_learning.train_state"
FORMAT_VERSION = "1"


def resume_path(out: Path) -> Path:
    return Path(out).with_suffix(".resume.safetensors")


@dataclass
class TrainState:
    step: int
    tokens: int
    settings: dict  # the run's TrainConfig, to refuse resuming with different settings
    data: dict  # the batch stream's counters (data.TrainBatches.state_dict)
    data_buffer: bytes
    extra: dict  # e.g. the W&B run id
    tensors: dict
    # Read back from a file (saving takes them from the model and optimizer): what restore() checks
    # the fresh model against, and AdamW's per-group hyper-parameters.
    parameter_names: list[str] = field(default_factory=list)
    optimizer_groups: list[dict] = field(default_factory=list)


def save_train_state(path: Path, model, optimizer: torch.optim.Optimizer, state: TrainState):
    tensors = {f"model.{name}": p.detach().cpu().contiguous() for name, p in model.named_parameters()}
    optimizer_state = optimizer.state_dict()
    for index, entry in optimizer_state["state"].items():
        for key, value in entry.items():
            if not torch.is_tensor(value):
                raise TypeError(f"optimizer state {key!r} is not a tensor")  # AdamW keeps only tensors
            tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = rng
    tensors["data.buffer"] = torch.tensor(list(state.data_buffer), dtype=torch.uint8)
    scalars = {"step": state.step, "tokens": state.tokens, "settings": state.settings, "data": state.data,
               "extra": state.extra, "parameter_names": [name for name, _ in model.named_parameters()],
               "optimizer_groups": optimizer_state["param_groups"]}
    write_safetensors(path, tensors, {"format": FORMAT, "format_version": FORMAT_VERSION, "state": json.dumps(scalars)})


def load_train_state(path: Path) -> TrainState:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no training state to resume from (it is written every --checkpoint-every steps)")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as e:
        raise ValueError(f"{path}: damaged training state ({str(e).splitlines()[0][:160]})") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a training state of this version (format {meta.get('format')!r}, "
                         f"version {meta.get('format_version')!r})")
    scalars = json.loads(meta["state"])
    return TrainState(scalars["step"], scalars["tokens"], scalars["settings"], scalars["data"],
                      bytes(tensors.pop("data.buffer").tolist()), scalars["extra"], tensors,
                      scalars["parameter_names"], scalars["optimizer_groups"])


def restore(state: TrainState, model, optimizer: torch.optim.Optimizer):
    """Load parameters, optimizer state and RNG state into a freshly built model and optimizer."""
    names = [name for name, _ in model.named_parameters()]
    if names != state.parameter_names:
        raise ValueError("the saved training state holds different parameters than this model")
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(state.tensors[f"model.{name}"])
    per_parameter: dict[int, dict] = {}
    for key, value in state.tensors.items():
        if key.startswith("optimizer."):
            _, index, field = key.split(".", 2)
            per_parameter.setdefault(int(index), {})[field] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in state.optimizer_groups]
    optimizer.load_state_dict({"state": per_parameter, "param_groups": groups})
    torch.set_rng_state(state.tensors["rng.torch"])
    cuda_states = [state.tensors[k] for k in sorted(state.tensors) if k.startswith("rng.cuda.")]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
