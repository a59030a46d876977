"""Where training numbers go: ``<out>.metrics.jsonl`` always (its format: ``nested_learning/metrics_file.py``),
Weights & Biases when asked, a progress line."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


class MetricsLog:
    """Append-only JSON lines. On resume, lines past the resumed step are dropped (they were written
    after the last training state and will be written again)."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict):
        with self.path.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")


class WandbLog:
    """A W&B run (online, or offline with WANDB_MODE=offline); ``wandb`` is imported only here."""

    def __init__(self, project: str, run_name: str | None, config: dict, directory: Path, run_id: str | None = None):
        try:
            import wandb
        except ImportError:
            raise ValueError("--wandb needs the 'wandb' package (pip install wandb)") from None
        directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=project, name=run_name, config=config, dir=str(directory),
                              id=run_id, resume="allow" if run_id else None)
        self.id = self.run.id

    def write(self, record: dict):
        kind = record.get("kind", "train")
        self.run.log({f"{kind}/{k}": v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"},
                     step=record["step"])

    def summary(self, values: dict):
        self.run.summary.update(values)

    def close(self):
        """Finish the run, then shut W&B's service process down: only then is the run's file complete
        (in CI, twice, finish() returned while the offline .wandb file held just its 7-byte header)."""
        import wandb
        self.run.finish()
        wandb.teardown()


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """``step 120/1000 | loss 2.134 | 1,024 tok/s | ETA 0:12:34`` on stderr: one rewritten line
    on a terminal, a line every ``every`` steps in a log file."""

    def __init__(self, total_steps: int, start_step: int, every: int, stream=None):
        self.total, self.start_step, self.every = total_steps, start_step, max(every, 1)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() and not os.environ.get("CI")
        self.started = time.perf_counter()
        self.tokens = 0

    def update(self, step: int, tokens_this_step: int, loss: float):
        self.tokens += tokens_this_step
        elapsed = time.perf_counter() - self.started
        done = step - self.start_step
        rate = self.tokens / elapsed if elapsed > 0 else 0.0
        eta = elapsed / done * (self.total - step) if done else 0.0
        line = f"step {step}/{self.total} | loss {loss:.3f} | {rate:,.0f} tok/s | ETA {_clock(eta)}"
        if self.tty:
            self.stream.write("\r" + line.ljust(70) + ("\n" if step == self.total else ""))
            self.stream.flush()
        elif step % self.every == 0 or step == self.total:
            self.stream.write(line + "\n")
            self.stream.flush()
        return rate

    def message(self, text: str):
        self.stream.write(("\n" if self.tty else "") + text + "\n")
        self.stream.flush()
