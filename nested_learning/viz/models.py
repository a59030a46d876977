"""Which model the dashboard runs, and what the Model page shows about it: parameter counts, the
training curve next to a checkpoint, and files to download.

The shipped checkpoint is ``assets/hope-default.safetensors``. The server's operator (and the tests)
may point elsewhere with the environment variable ``NLE_DEFAULT_CHECKPOINT``, read once at import:
the path is never taken from a request.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..checkpoint import CheckpointError, load_checkpoint, model_from_source, save_checkpoint
from ..config import PRESETS
from ..metrics_file import metrics_path, read_metrics as read_metrics_file
from ..model import HopeTransformer
from ..recording import Recording

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = Path(os.environ.get("NLE_DEFAULT_CHECKPOINT") or ROOT / "assets" / "hope-default.safetensors")
# The same-size, same-window transformer trained by the same recipe, beside the default checkpoint:
# what the memory is compared against.
BASELINE_NAME = "transformer-window16.safetensors"
# What the other checkpoints shipped in assets/ are, for the pages' labels (a file not named here is listed by name).
CHECKPOINT_NOTES = {BASELINE_NAME: "the same-size transformer trained alike, same window, no test-time memory",
                    "transformer-window512.safetensors": "the transformer with a 512-token window (as many numbers in "
                                                         "its cache as one memory layer), trained alike",
                    "transformer-full.safetensors": "the transformer attending to every token it has read, trained alike",
                    "titans.safetensors": "the titans preset (memory with damped momentum beside attention, no "
                                          "self-modification or CMS), trained alike",
                    "hope-deep.safetensors": "Hope with the paper's 2-layer MLP memory (memory_depth 2) in place of the "
                                             "linear one, trained alike",
                    "hope-lm.safetensors": "Hope whose CMS levels learn from the next-token loss (the paper's objective, "
                                           "cms_objective lm) in place of the local target, trained alike"}
FALLBACK_PRESET, FALLBACK_SEED = "hope", 0
# PyTorch threads per script run. One: sessions run in parallel threads, and a busy CPU makes OpenMP's
# spinning thread teams collapse (measured on 2 cores with one other busy process: a 512-token run took
# 0.3 s with 1 thread and 22 s with 2). At this model size 1 thread is as fast as 2 on an idle machine.
TORCH_THREADS = 1
MAX_METRIC_LINES = 100_000


@dataclass(frozen=True)
class ModelChoice:
    kind: str  # "shipped" (the default checkpoint), "preset" (seeded random init) or "upload"
    name: str  # preset name, or the checkpoint's file name
    device: str = "cpu"
    digest: str = ""  # sha256 of an uploaded file (its identity)

    @property
    def key(self) -> str:
        """Identity of the model (a memory state belongs to exactly one)."""
        return f"{self.kind}:{self.name}:{self.digest}:{self.device}"

    @property
    def label(self) -> str:
        what = {"shipped": f"checkpoint {self.name}", "checkpoint": f"checkpoint {self.name}",
                "preset": f"random-init '{self.name}' (seed {FALLBACK_SEED})", "upload": f"uploaded {self.name}"}[self.kind]
        return f"{what} on {self.device}"


def device_options() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def default_choice(device: str | None = None) -> tuple[ModelChoice, str | None]:
    """The shipped checkpoint when it exists, else a seeded random-init model with a notice."""
    device = device or device_options()[-1]  # the GPU when there is one
    if DEFAULT_CHECKPOINT.is_file():
        return ModelChoice("shipped", DEFAULT_CHECKPOINT.name, device), None
    return ModelChoice("preset", FALLBACK_PRESET, device), (
        f"No trained checkpoint found ({DEFAULT_CHECKPOINT.name} is not in assets/): this is a seeded random-init "
        f"'{FALLBACK_PRESET}' model. Its memory still learns in context, but its predictions are untrained.")


def other_checkpoints() -> list[str]:
    """The file names of the checkpoints shipped beside the default one (the baseline, trained variants)."""
    folder = DEFAULT_CHECKPOINT.parent
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob("*.safetensors") if p.name != DEFAULT_CHECKPOINT.name and p.is_file())


def build_model(choice: ModelChoice) -> HopeTransformer:
    """Load a shipped or preset model (uploads: :func:`load_upload`); ``checkpoint`` names one of
    :func:`other_checkpoints`."""
    if choice.kind not in ("shipped", "checkpoint", "preset"):
        raise ValueError(f"a {choice.kind!r} model is not built from a name")
    if choice.kind == "preset" and choice.name not in PRESETS:
        raise ValueError(f"unknown preset {choice.name!r}")
    if choice.kind == "checkpoint" and choice.name not in other_checkpoints():
        raise ValueError(f"no shipped checkpoint named {choice.name!r}")
    # never a path from the request: the default file, or a name found in its folder
    checkpoint = {"shipped": DEFAULT_CHECKPOINT, "checkpoint": DEFAULT_CHECKPOINT.with_name(choice.name)}.get(choice.kind)
    model, _ = model_from_source(checkpoint, choice.name, FALLBACK_SEED, choice.device)
    return model


def load_upload(name: str, data: bytes, device: str) -> tuple[ModelChoice, HopeTransformer]:
    """An uploaded checkpoint's bytes, validated and loaded (never unpickled); its choice is keyed by the
    content's hash. A bad file raises CheckpointError whose one line names the file."""
    try:
        model = load_checkpoint(data, device=device)
    except CheckpointError as e:
        raise CheckpointError(str(e).replace("uploaded file", name, 1)) from None
    return ModelChoice("upload", name, device, hashlib.sha256(data).hexdigest()[:16]), model


def baseline_checkpoint() -> Path:
    return DEFAULT_CHECKPOINT.with_name(BASELINE_NAME)


def build_baseline(device: str = "cpu") -> HopeTransformer | None:
    """The shipped baseline transformer beside the shipped checkpoint, or None when there is none."""
    if not baseline_checkpoint().is_file():
        return None
    model, _ = model_from_source(baseline_checkpoint(), "transformer", FALLBACK_SEED, device)
    return model


def parameter_table(model: HopeTransformer) -> pd.DataFrame:
    """Learned parameters per component (the tied embedding / output matrix counted once)."""
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():  # lists a tied weight once
        parts = name.split(".")
        if parts[0] == "blocks":
            component = "norms" if parts[2] == "norms" else parts[2]
        else:
            component = {"embed": "embedding (tied with output)", "final_norm": "norms"}.get(parts[0], parts[0])
        counts[component] = counts.get(component, 0) + p.numel()
    table = pd.DataFrame({"component": list(counts), "parameters": list(counts.values())})
    total = pd.DataFrame({"component": ["total"], "parameters": [sum(counts.values())]})
    return pd.concat([table, total], ignore_index=True)


def read_metrics(source) -> pd.DataFrame:
    """JSON lines (a path, or a list of dicts from checkpoint metadata) -> one row per line with a step;
    lines that are not JSON objects with a numeric step are skipped (a file still being written may end
    mid-line)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        records = read_metrics_file(path, skip_bad_lines=True) if path.is_file() else []
    else:
        records = list(source or [])
    records = records[:MAX_METRIC_LINES]
    rows = [r for r in records if isinstance(r, dict) and isinstance(r.get("step"), (int, float))
            and not isinstance(r.get("step"), bool)]
    return pd.DataFrame(rows)


def training_metrics(model: HopeTransformer, choice: ModelChoice) -> pd.DataFrame:
    """The curves of the model a session runs: the shipped checkpoint's metrics file beside it (the whole
    curriculum), else the thinned curves a checkpoint carries in its metadata (an upload), else none."""
    if choice.kind == "shipped":
        return read_metrics(metrics_path(DEFAULT_CHECKPOINT))
    metadata = model.checkpoint_metadata or {}
    return read_metrics(metadata.get("metrics") if isinstance(metadata.get("metrics"), list) else [])


def _curves(frame: pd.DataFrame, words: tuple[str, ...]) -> list[str]:
    return [c for c in frame.columns if c != "step" and any(w in c for w in words)
            and pd.api.types.is_numeric_dtype(frame[c])]


def training_curve(frame: pd.DataFrame) -> go.Figure | None:
    """Loss-like fields (loss, bpb) and accuracies against the step; None when there is nothing to plot."""
    if frame.empty or "step" not in frame:
        return None
    losses, accuracies = _curves(frame, ("loss", "bpb")), _curves(frame, ("accuracy",))
    if not losses and not accuracies:
        return None
    panels = [(n, cols) for n, cols in (("loss (nats) / bits per byte", losses), ("accuracy", accuracies)) if cols]
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, subplot_titles=[n for n, _ in panels])
    for row, (_, columns) in enumerate(panels, start=1):
        for column in columns:
            points = frame[["step", column]].dropna().sort_values("step")
            fig.add_trace(go.Scatter(x=points["step"], y=points[column], name=column, mode="lines+markers"
                                     if len(points) < 50 else "lines"), row=row, col=1)
    fig.update_xaxes(title_text="step", row=len(panels), col=1)
    fig.update_layout(height=280 * len(panels), margin=dict(l=10, r=10, t=40, b=40))
    return fig


def _via_file(write, suffix: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"file{suffix}"
        write(path)
        return path.read_bytes()


def checkpoint_bytes(model: HopeTransformer) -> bytes:
    """The model as a checkpoint file (its metadata kept)."""
    return _via_file(lambda p: save_checkpoint(model, p, model.checkpoint_metadata), ".safetensors")


def recording_bytes(recording: Recording) -> bytes:
    return _via_file(recording.save, ".safetensors")


def load_saved_recording(name: str, data: bytes) -> Recording:
    """A recording file a user saved before (``recording_bytes``) and uploads again, read by the checked
    reader (never unpickled); a bad file raises ValueError whose one line names the file."""
    from ..recording import RecordingError
    try:
        return Recording.load(data)
    except RecordingError as e:
        raise ValueError(str(e).replace("uploaded file", name, 1)) from None


def recording_csv(recording: Recording) -> bytes:
    return recording.per_token().to_csv(index=False).encode("utf-8")
