"""Device selection: ``"auto"`` means CUDA when available, else CPU."""
from __future__ import annotations

import torch

KNOWN_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (or a torch.device). An unknown name, or a
    device this machine lacks, raises ValueError with one line (torch's own errors list 20 types)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in KNOWN_TYPES:
        raise ValueError(f"unknown device {str(device)[:40]!r}; use auto, cpu or cuda")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA device is available; use device='auto' or 'cpu'")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"no CUDA device {resolved.index}: this machine has {torch.cuda.device_count()}")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS was requested but is not available on this machine; use device='auto' or 'cpu'")
    return resolved
