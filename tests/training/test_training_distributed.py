"""torchrun with 2 processes (gloo, CPU) computes what one process computes on the same global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nested_learning import load_checkpoint
from nested_learning.cli import main
from nested_learning.metrics_file import read_metrics
from tests.conftest import TINY
from tests.support.training import write_text

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parents[2]


def train_args(data: Path, out: Path) -> list[str]:
    # Two segments per window: the learned initial states get gradients only in the first (no_sync)
    # segment, the case DDP must be told about.
    args = ["train", "--data", str(data), "--out", str(out), "--steps", "3", "--batch-size", "4", "--seq-len", "64",
            "--bptt", "32", "--lr", "3e-3", "--warmup-steps", "1", "--heldout-fraction", "0.1", "--log-every", "1",
            "--eval-every", "0", "--checkpoint-every", "0", "--eval-windows", "4", "--eval-task-samples", "4"]
    return args + [f"--set={k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in TINY.items()]


def test_two_process_torchrun_matches_one_process(tmp_path):
    data = write_text(tmp_path / "text")
    assert main(train_args(data, tmp_path / "one.safetensors")) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "nested_learning", *train_args(data, tmp_path / "two.safetensors")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]

    one, two = (read_metrics(tmp_path / f"{n}.metrics.jsonl") for n in ("one", "two"))
    losses_one = [r["loss"] for r in one if r["kind"] == "train"]
    losses_two = [r["loss"] for r in two if r["kind"] == "train"]
    assert len(losses_one) == len(losses_two) == 3
    assert all(abs(a - b) <= 1e-5 * abs(a) for a, b in zip(losses_one, losses_two)), (losses_one, losses_two)

    a, b = (load_checkpoint(tmp_path / f"{n}.safetensors", device="cpu") for n in ("one", "two"))
    assert b.checkpoint_metadata["processes"] == 2
    # Adam divides each gradient by its own running size, so a coordinate whose gradient is near Adam's
    # eps turns reduction-order rounding (the two runs sum the batch in different orders) into a step
    # difference of up to ~1e-3 lr: over 3 steps at lr 3e-3 that is ~1e-5. A DDP fault (a gradient not
    # averaged, an initial state not synced) moves coordinates by ~lr, far beyond it.
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), name  # every parameter, learned initial states included
    # Evaluation splits its rows over the processes and sums: the same numbers as one process.
    bpb_one = a.checkpoint_metadata["eval"]["updates_on"]["heldout_bpb"]
    bpb_two = b.checkpoint_metadata["eval"]["updates_on"]["heldout_bpb"]
    assert abs(bpb_one - bpb_two) <= 1e-4 * bpb_one
