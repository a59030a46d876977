"""Evaluation: held-out bits per byte, the synthetic memory tasks, and loss on repeated text.

Every function takes the bare model (not a DDP wrapper), runs under ``no_grad`` (the memory still
learns: test-time updates are not gated by autograd) and, inside a distributed run, splits its
rows over the processes and sums the results, so every process returns the same numbers.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..ablation import Ablation
from .tasks import make_sample
from .distributed import all_reduce_sum, rank_and_size
from .loss import segmented_loss

UPDATES_OFF = Ablation(test_time_updates=False)
# The fixed evaluation settings of each task (training draws sizes around these).
EVAL_TASKS = {"recall": dict(n_pairs=8), "repeat": dict(length=32), "passkey": dict(n_distractors=12)}


def _my_rows(n: int) -> range:
    rank, size = rank_and_size()
    return range(rank, n, size)


@torch.no_grad()
def heldout_bpb(model, windows: torch.Tensor, segment_len: int, batch_size: int = 8, ablation=None) -> float:
    """Bits per byte on held-out windows [N, L + 1], read in segments like training."""
    rows = windows[list(_my_rows(len(windows)))].to(model.device)
    sums = torch.zeros(2, dtype=torch.float64, device=model.device)
    for batch in rows.split(batch_size):
        nats, count = segmented_loss(model, batch, torch.ones_like(batch, dtype=torch.float32), segment_len, ablation)
        sums += torch.stack([nats, count])
    nats, count = all_reduce_sum(sums).tolist()
    return nats / count / math.log(2)


def _answer_runs(positions) -> list[list[int]]:
    """Contiguous answer positions grouped: one run per recalled value / copied string / pass key."""
    runs = []
    for p in positions:
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


@torch.no_grad()
def task_accuracy(model, task: str, n_samples: int = 64, seed: int = 0, ablation=None, batch_size: int = 16,
                  **params) -> dict:
    """Greedy accuracy on a task's answer bytes: ``byte_accuracy`` (answer bytes right) and
    ``answer_accuracy`` (whole answers right: a recalled value, a copied string, a pass key)."""
    params = {**EVAL_TASKS.get(task, {}), **params}
    samples = [make_sample(task, f"eval:{seed}:{task}:{i}", **params) for i in _my_rows(n_samples)]
    counts = [0, 0, 0, 0]  # bytes right, bytes, answers right, answers
    by_length: dict[int, list] = {}
    for sample in samples:  # fixed task settings give one length per task: one group
        by_length.setdefault(len(sample), []).append(sample)
    for group in by_length.values():
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            tokens = torch.tensor([s.tokens for s in chunk], device=model.device)
            # One device-to-host copy per batch: hits[row, p - 1] says whether byte p was predicted.
            hits = (model(tokens[:, :-1], ablation=ablation).logits.argmax(-1) == tokens[:, 1:]).tolist()
            for row, sample in enumerate(chunk):
                right = {p: hits[row][p - 1] for p in sample.answer_positions}
                runs = _answer_runs(sample.answer_positions)
                row_counts = (sum(right.values()), len(right), sum(all(right[p] for p in run) for run in runs), len(runs))
                counts = [total + n for total, n in zip(counts, row_counts)]
    counts = torch.tensor(counts, dtype=torch.float64, device=model.device)
    bytes_right, n_bytes, answers_right, n_answers = all_reduce_sum(counts).tolist()
    return {"byte_accuracy": bytes_right / max(n_bytes, 1), "answer_accuracy": answers_right / max(n_answers, 1)}


@torch.no_grad()
def repeated_text_loss(model, windows: torch.Tensor, length: int = 256, ablation=None) -> dict:
    """Mean loss (nats/byte) on the first and the second occurrence of held-out text read twice.

    Each row is its first ``length`` bytes followed by the same bytes again; the first byte of the
    first occurrence (no context) is not scored."""
    length = min(length, windows.shape[1])
    rows = windows[list(_my_rows(len(windows))), :length].to(model.device)
    sums = torch.zeros(3, dtype=torch.float64, device=model.device)
    if len(rows):
        doubled = torch.cat([rows, rows], dim=1)
        logits = model(doubled[:, :-1], ablation=ablation).logits
        nats = F.cross_entropy(logits.float().flatten(0, 1), doubled[:, 1:].flatten(), reduction="none").view(len(rows), -1)
        sums += torch.stack([nats[:, :length - 1].sum().double(), nats[:, length - 1:].sum().double(),
                             torch.tensor(float(len(rows)), dtype=torch.float64, device=model.device)])
    first, second, n = all_reduce_sum(sums).tolist()
    return {"first": first / (n * (length - 1)), "second": second / (n * length)}


def _measure(model, windows: torch.Tensor | None, segment_len: int, tasks: list[str], task_samples: int, seed: int,
             ablation=None, repeat_length: int = 256) -> dict:
    """One condition's numbers: task accuracies; held-out bpb and repeated text when there is held-out text."""
    part = {"tasks": {task: task_accuracy(model, task, task_samples, seed, ablation) for task in tasks}}
    if windows is not None:
        part["heldout_bpb"] = heldout_bpb(model, windows, segment_len, ablation=ablation)
        part["repeated_text"] = repeated_text_loss(model, windows, repeat_length, ablation)
    return part


def eval_line(part: dict) -> dict:
    """The numbers of a metrics ``eval`` line from one condition of a report (the periodic ones and the
    final one carry the same keys)."""
    out = {}
    if "heldout_bpb" in part:
        repeated = part["repeated_text"]
        out.update(heldout_bpb=part["heldout_bpb"], repeated_text_second_minus_first=repeated["second"] - repeated["first"])
    out.update({f"{task}_accuracy": v["answer_accuracy"] for task, v in part["tasks"].items()})
    return out


def quick_report(model, windows: torch.Tensor | None, segment_len: int, tasks: list[str], task_samples: int,
                 seed: int) -> dict:
    """The periodic evaluation, updates on: held-out bits per byte and the loss change from the
    first to the second reading of held-out text (when there is held-out text), task answer accuracy."""
    return eval_line(_measure(model, windows, segment_len, tasks, task_samples, seed))


def full_report(model, windows: torch.Tensor | None, segment_len: int, tasks: list[str], task_samples: int, seed: int,
                baseline=None, repeat_length: int = 256) -> dict:
    """Everything, with test-time updates on and off; ``baseline`` (a random-init model) adds its bpb."""
    was_training = model.training
    model.eval()
    report = {"task_samples": task_samples}
    for name, ablation in (("updates_on", None), ("updates_off", UPDATES_OFF)):
        report[name] = _measure(model, windows, segment_len, tasks, task_samples, seed, ablation, repeat_length)
    if windows is not None:
        report.update(heldout_windows=len(windows), window_bytes=windows.shape[1] - 1,
                      repeated_text_bytes=min(repeat_length, windows.shape[1]))
        if baseline is not None:
            baseline.eval()
            report["random_init_heldout_bpb"] = heldout_bpb(baseline, windows, segment_len)
    model.train(was_training)
    return report
