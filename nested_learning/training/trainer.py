"""The training loop: AdamW, warm-up + cosine schedule, clipping, truncated BPTT, checkpoints, resume.

One step reads a global batch of ``batch_size`` windows of ``seq_len + 1`` bytes, each in segments
of ``bptt`` tokens (loss.py), and makes one optimizer update. The loss is the weighted mean of
next-byte cross-entropy over the whole global batch (text bytes weigh 1, task sequences weigh only
their answer bytes), so one process and N processes compute the same update.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import tasks as synthetic
from ..checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from ..config import HopeConfig
from ..model import HopeTransformer
from . import distributed
from .data import TrainBatches, heldout_sequences
from .evaluate import eval_line, full_report, quick_report
from .loss import segmented_loss
from ..metrics_file import metrics_path, read_metrics
from .metrics import MetricsLog, Progress, WandbLog
from .resume import TrainState, load_train_state, restore, resume_path, save_train_state


@dataclass
class TrainConfig:
    out: str
    data: list[str] = field(default_factory=list)
    preset: str = "hope"
    model_overrides: dict = field(default_factory=dict)
    tasks: list[str] = field(default_factory=lambda: list(synthetic.TASKS))
    task_fraction: float = 0.25  # share of training sequences that are synthetic memory tasks
    reread_fraction: float = 0.0  # share of text windows that are one span of text read repeatedly
    reread_gap: int = 0  # most bytes of other text between a reread window's readings (0: back to back)
    balance_windows: bool = False  # every window weighs the same in the loss, however few bytes it scores
    task_options: dict = field(default_factory=dict)  # per task: mixture weight and parameter ranges (tasks.py)
    task_phrasings: str = "original"  # the tasks' wordings: "original" (one, as earlier runs), "trained" or "binders" (phrasings.py)
    heldout_fraction: float = 0.02  # share of documents held out (by a hash of the document id)
    steps: int = 1000
    batch_size: int = 8  # windows per step, over all processes
    seq_len: int = 512  # bytes per window; the memory state starts fresh in each window
    bptt: int = 128  # segment length: the state is detached between segments (truncated backprop)
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 = no clipping
    precision: str = "auto"  # auto: bf16 autocast on a GPU that supports it, else fp32
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500  # 0 = only at the end
    eval_every: int = 500  # 0 = only at the end
    eval_windows: int = 16
    eval_task_samples: int = 64
    log_every: int = 10
    wandb: bool = False
    wandb_project: str = "nested-learning"
    wandb_run_name: str | None = None
    resume: bool = False
    init: str = ""  # start from this checkpoint's weights and config (fine-tuning); fresh optimizer and schedule
    data_note: str = ""  # where the data came from, recorded in the checkpoint metadata
    command: str = ""  # the command line, recorded in the checkpoint metadata

    # Settings that change what a run computes: a resumed run must have the same ones.
    RESUME_FIELDS = ("data", "init", "preset", "model_overrides", "tasks", "task_options", "task_fraction",
                     "task_phrasings", "reread_fraction", "reread_gap", "balance_windows",
                     "heldout_fraction", "steps",
                     "batch_size", "seq_len", "bptt", "lr", "min_lr", "warmup_steps", "weight_decay", "beta1",
                     "beta2", "grad_clip", "seed")

    def model_config(self) -> HopeConfig:
        if self.init:
            if self.model_overrides:
                raise ValueError("--init takes the model config from the checkpoint: drop --set")
            return read_checkpoint_info(self.init)[0]
        try:
            base = HopeConfig.preset(self.preset).to_dict()
        except ValueError as e:
            raise ValueError(f"--preset: {e}") from None
        return HopeConfig.from_dict({**base, **self.model_overrides})

    def validate(self):
        def check(ok: bool, message: str):
            if not ok:
                raise ValueError(message)
        check(bool(self.out), "--out is required")
        for name in ("steps", "batch_size", "seq_len", "bptt", "log_every", "eval_windows", "eval_task_samples"):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 1, f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "checkpoint_every", "eval_every"):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 0, f"--{name.replace('_', '-')} must be >= 0, got {value!r}")
        check(self.seq_len <= 1 << 20, f"--seq-len {self.seq_len} is absurd (at most {1 << 20})")
        check(self.warmup_steps <= self.steps, f"--warmup-steps ({self.warmup_steps}) exceeds --steps ({self.steps})")
        check(0.0 < self.lr <= 1.0, f"--lr must be in (0, 1], got {self.lr}")
        check(0.0 <= self.min_lr <= self.lr, f"--min-lr must be in [0, --lr], got {self.min_lr}")
        check(self.weight_decay >= 0.0, f"--weight-decay must be >= 0, got {self.weight_decay}")
        check(0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0, "betas must be in [0, 1)")
        check(self.grad_clip >= 0.0, f"--grad-clip must be >= 0, got {self.grad_clip}")
        check(0.0 <= self.task_fraction <= 1.0, f"--task-fraction must be in [0, 1], got {self.task_fraction}")
        check(0.0 <= self.reread_fraction <= 1.0, f"--reread-fraction must be in [0, 1], got {self.reread_fraction}")
        check(isinstance(self.reread_gap, int) and 0 <= self.reread_gap <= self.seq_len,
              f"--reread-gap must be an integer in [0, --seq-len], got {self.reread_gap!r}")
        check(0.0 < self.heldout_fraction < 1.0, f"--heldout-fraction must be in (0, 1), got {self.heldout_fraction}")
        check(self.precision in ("auto", "fp32", "bf16"), f"--precision must be auto, fp32 or bf16, got {self.precision!r}")
        check(self.task_phrasings in synthetic.TRAINING_PHRASINGS,
              f"--task-phrasings must be one of {', '.join(synthetic.TRAINING_PHRASINGS)}, got {self.task_phrasings!r}")
        self.tasks = synthetic.parse_task_names(self.tasks)
        synthetic.check_task_options(self.task_options)
        unused = sorted(set(self.task_options) - set(self.tasks))
        check(not unused, f"task options given for tasks not trained: {', '.join(unused)}")
        check(bool(self.data) or (self.task_fraction == 1.0 and bool(self.tasks)),
              "no training data: give --data (or --task-fraction 1 to train on the synthetic tasks alone)")
        check(self.task_fraction == 0.0 or bool(self.tasks), "--task-fraction > 0 needs at least one task in --tasks")
        check(not self.tasks or self.task_fraction == 0.0 or self.seq_len >= 32,
              f"--seq-len must be at least 32 with synthetic tasks (a task sample needs room), got {self.seq_len}")
        self.model_config()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr`` at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    # Matrices decay; gains, biases and other vectors do not (the GPT-2 / nanoGPT convention).
    decay = [p for p in model.parameters() if p.dim() >= 2]
    keep = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": keep, "weight_decay": 0.0}],
                             lr=config.lr, betas=(config.beta1, config.beta2), eps=1e-8)


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda"
                                      and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return None


def train(config: TrainConfig, on_step=None) -> dict:
    """Run (or resume) training; returns the final evaluation report. ``on_step(step, record)`` is
    called after every optimizer step (the dashboard's hook; tests use it to interrupt a run)."""
    config.validate()
    if not config.command:
        config.command = "python -m nested_learning " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    world = distributed.setup(config.device)
    finished = False
    try:
        report = _train(config, world, on_step)
        finished = True
        return report
    finally:
        distributed.teardown(wait_for_peers=finished)  # a failed rank must not wait for peers that may be gone


def _check_resumable(saved: TrainState, config: TrainConfig):
    now = json.loads(json.dumps(config.to_dict()))  # as saved: tuples become lists
    defaults = json.loads(json.dumps(TrainConfig(out="").to_dict()))  # a setting newer than the saved run
    for name in TrainConfig.RESUME_FIELDS:
        was = saved.settings.get(name, defaults[name])
        if was != now[name]:
            raise ValueError(f"cannot resume: --{name.replace('_', '-')} was {was!r}, "
                             f"now {now[name]!r} (settings must match the interrupted run)")


def _train(config: TrainConfig, world: distributed.World, on_step) -> dict:
    run = _Run(config, world)
    while run.step < config.steps:
        record = run.optimizer_step()
        run.log(record)
        if config.eval_every and run.step % config.eval_every == 0 and run.step < config.steps:
            run.evaluate()
        if config.checkpoint_every and run.step % config.checkpoint_every == 0 and run.step < config.steps:
            run.checkpoint()
        if on_step is not None:
            on_step(run.step, record)
    return run.finish()


class _Run:
    """One training run's moving parts (model, optimizer, data, logs, counters), in the steps of ``_train``."""

    def __init__(self, config: TrainConfig, world: distributed.World):
        if config.batch_size % world.size:
            raise ValueError(f"--batch-size ({config.batch_size}) must be a multiple of the number of processes ({world.size})")
        self.config, self.world, self.out = config, world, Path(config.out)
        saved = self._saved_state()
        torch.manual_seed(config.seed)
        self.model = (load_checkpoint(config.init, device=world.device) if config.init
                      else HopeTransformer(config.model_config()).to(world.device)).train()
        self.batches = TrainBatches(config.data, config.seq_len, config.heldout_fraction, config.tasks,
                                    config.task_fraction, config.seed, config.reread_fraction, config.task_options,
                                    config.balance_windows, config.reread_gap, config.task_phrasings)
        self.heldout = (heldout_sequences(self.batches, config.eval_windows, config.heldout_fraction)
                        if self.batches.sources else None)
        self.optimizer = make_optimizer(self.model, config)
        self.step, self.tokens, self.extra = 0, 0, {}
        if saved is not None:
            restore(saved, self.model, self.optimizer)
            self.batches.load_state_dict(saved.data, saved.data_buffer)
            self.step, self.tokens, self.extra = saved.step, saved.tokens, dict(saved.extra)
        if self.step >= config.steps:
            raise ValueError(f"the run already made its {config.steps} steps")
        self._open_logs()
        self.wrapped = self._distributed_model()
        self.rows = slice(world.rank * config.batch_size // world.size, (world.rank + 1) * config.batch_size // world.size)
        self.amp = autocast_dtype(config, world.device)
        self.started = time.perf_counter()

    def _saved_state(self) -> TrainState | None:
        if self.config.resume:
            saved = load_train_state(resume_path(self.out))
            _check_resumable(saved, self.config)
            return saved
        if self.world.is_main and resume_path(self.out).exists():
            raise ValueError(f"{resume_path(self.out)} exists: an unfinished run; add --resume to continue it or delete the file")
        return None

    def _open_logs(self):
        config = self.config
        self.metrics = self.wandb = self.progress = None
        if not self.world.is_main:
            return
        self.metrics = MetricsLog(metrics_path(self.out), resume_step=self.step if config.resume else None)
        if config.wandb:
            self.wandb = WandbLog(config.wandb_project, config.wandb_run_name, config.to_dict(), self.out.parent,
                                  self.extra.get("wandb_id"))
            self.extra["wandb_id"] = self.wandb.id
        self.progress = Progress(config.steps, self.step, config.log_every)
        self.progress.message(f"training {sum(p.numel() for p in self.model.parameters()):,} parameters on "
                              f"{self.world.device} x {self.world.size}: {config.steps} steps of {config.batch_size} x "
                              f"{config.seq_len} bytes")

    def _distributed_model(self):
        if self.world.size == 1:
            return self.model
        # Later segments never reach the learned initial states (the state is detached), so those
        # parameters look unused in the synchronised last segment: DDP must be told to expect that.
        segments = math.ceil(self.config.seq_len / self.config.bptt)
        return torch.nn.parallel.DistributedDataParallel(
            self.model, device_ids=[self.world.device.index] if self.world.device.type == "cuda" else None,
            find_unused_parameters=segments > 1, broadcast_buffers=False)

    def optimizer_step(self) -> dict:
        """One update on one global batch; returns its train record."""
        config, world = self.config, self.world
        lr = learning_rate(self.step, config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch_tokens, batch_weights = self.batches.next_batch(config.batch_size)
        global_weight = max(float(batch_weights[:, 1:].sum()), 1.0)
        # DDP averages gradients over processes, so each process scales its sum by size / global weight.
        nats, _ = segmented_loss(self.wrapped, batch_tokens[self.rows].to(world.device), batch_weights[self.rows],
                                 config.bptt, backward_scale=world.size / global_weight, autocast_dtype=self.amp)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip or float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss = float(distributed.all_reduce_sum(nats)) / global_weight
        self.step += 1
        self.tokens += config.batch_size * config.seq_len
        if not math.isfinite(loss):
            raise ValueError(f"loss became {loss} at step {self.step}; lower --lr or raise --warmup-steps")
        return {"kind": "train", "step": self.step, "tokens": self.tokens, "loss": loss, "bpb": loss / math.log(2),
                "lr": lr, "grad_norm": float(grad_norm)}

    def log(self, record: dict):
        if not self.world.is_main:
            return
        config = self.config
        rate = self.progress.update(self.step, config.batch_size * config.seq_len, record["loss"])
        if self.step % config.log_every == 0 or self.step == config.steps:
            self._write({**record, "tokens_per_s": rate, "elapsed_s": time.perf_counter() - self.started})

    def _write(self, entry: dict):
        if self.metrics:
            self.metrics.write(entry)
        if self.wandb:
            self.wandb.write(entry)

    def evaluate(self):
        config = self.config
        self.model.eval()
        report = quick_report(self.model, self.heldout, config.bptt, config.tasks, config.eval_task_samples, config.seed)
        self._write({"kind": "eval", "step": self.step, "tokens": self.tokens, **report})
        self.model.train()

    def checkpoint(self):
        if not self.world.is_main:
            return
        save_checkpoint(self.model, self.out, _metadata(self.config, self.world, self.step, self.tokens, None))
        data_state, buffer = self.batches.state_dict()
        save_train_state(resume_path(self.out), self.model, self.optimizer,
                         TrainState(self.step, self.tokens, self.config.to_dict(), data_state, buffer, self.extra, {}))

    def finish(self) -> dict:
        """The final evaluation (against this run's random-init model), the complete checkpoint, logs closed."""
        config, world = self.config, self.world
        if world.is_main:
            self.progress.message("final evaluation ...")
        torch.manual_seed(config.seed)
        baseline = HopeTransformer(self.model.config).to(world.device)  # a random-init model: this run's step 0 without --init
        report = full_report(self.model, self.heldout, config.bptt, config.tasks, config.eval_task_samples, config.seed,
                             baseline)
        self._write({"kind": "eval", "step": self.step, "tokens": self.tokens, **eval_line(report["updates_on"])})
        if world.is_main:
            metadata = _metadata(config, world, self.step, self.tokens, report)
            metadata["metrics"] = _thinned(read_metrics(metrics_path(self.out)))  # curves for an uploaded checkpoint
            save_checkpoint(self.model, self.out, metadata)
            resume_path(self.out).unlink(missing_ok=True)  # the run is complete: nothing left to resume
            if self.wandb:
                self.wandb.summary(_flatten(report))
                self.wandb.close()
            self.progress.message(f"saved {self.out}")
        return report


def _metadata(config: TrainConfig, world, step: int, tokens: int, report: dict | None) -> dict:
    return {"command": config.command, "status": "complete" if report is not None else "in progress",
            "step": step, "tokens": tokens, "data": config.data, "data_note": config.data_note,
            "tasks": config.tasks, "train_config": config.to_dict(), "processes": world.size,
            "torch": torch.__version__, "eval": report or {}}


def _thinned(records: list[dict], limit: int = 1000) -> list[dict]:
    """At most ``limit`` train lines (evenly spaced, the last kept) plus every eval line."""
    train_lines = [r for r in records if r.get("kind") == "train"]
    stride = math.ceil(len(train_lines) / limit) if train_lines else 1
    keep = {id(r) for r in train_lines[::-1][::stride]}
    return [r for r in records if r.get("kind") != "train" or id(r) in keep]


def _flatten(values: dict, prefix: str = "final") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}/{key}"))
        elif isinstance(value, (int, float)):
            flat[f"{prefix}/{key}"] = value
    return flat
