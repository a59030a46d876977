"""The training metrics file, ``<checkpoint stem>.metrics.jsonl``: where it lives beside a checkpoint and
how it is read. Training writes it (``training/metrics.py``), the dashboard plots it; neither imports
the other for it.

One JSON object per line, each with ``kind`` ("train" or "eval"), ``step`` and ``tokens``; train lines
add loss, bpb, lr, grad_norm, tokens_per_s, elapsed_s; eval lines add heldout_bpb and <task>_accuracy.
"""
from __future__ import annotations

import json
from pathlib import Path


def metrics_path(out: Path) -> Path:
    return Path(out).with_suffix(".metrics.jsonl")


def read_metrics(path: Path, skip_bad_lines: bool = False) -> list[dict]:
    """One record per non-blank line. ``skip_bad_lines`` is for readers of a run that may still be writing (the
    dashboard): lines that are not JSON are skipped (the last one may end mid-line) and bytes that are not UTF-8
    are replaced; without it such a file raises."""
    text = Path(path).read_text(encoding="utf-8", errors="replace" if skip_bad_lines else "strict")
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if not skip_bad_lines:
                raise
    return records
