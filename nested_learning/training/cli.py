"""``python -m nested_learning train``: the command line over trainer.train.

    python -m nested_learning train --preset hope --data wiki.xml.bz2 --out runs/hope.safetensors
    torchrun --nproc_per_node 8 -m nested_learning train --data hf:wikimedia/wikipedia:20231101.en ...
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys

import torch

from ..cli import CommandError
from ..config import PAPER_PRESETS, PRESETS
from .tasks import TASKS, TRAINING_PHRASINGS
from .recipe import RECIPES, load_recipe, run_recipe
from .trainer import TrainConfig, train

DEFAULTS = TrainConfig(out="")


def _override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def add_arguments(parser: argparse.ArgumentParser):
    d = DEFAULTS
    data = parser.add_argument_group("data")
    data.add_argument("--data", action="append", default=[], metavar="SPEC",
                      help="text file or folder, .parquet (id, url, title, text), MediaWiki .xml / .xml.bz2, or "
                           "hf:NAME[:CONFIG][@SPLIT] (needs 'datasets' and network); repeat to mix sources")
    data.add_argument("--tasks", default=",".join(TASKS), help="synthetic memory tasks to mix in (default %(default)s)")
    data.add_argument("--task-phrasings", default=d.task_phrasings, choices=list(TRAINING_PHRASINGS),
                      help="the tasks' wordings: original (the one earlier runs used) or trained (each sample drawn from "
                           "the many trained templates; the held-out ones are never drawn) (default %(default)s)")
    data.add_argument("--task-fraction", type=float, default=d.task_fraction,
                      help="share of training sequences that are synthetic tasks (default %(default)s)")
    data.add_argument("--reread-fraction", type=float, default=d.reread_fraction,
                      help="share of text windows that are one span of training text read repeatedly, every byte "
                           "scored: a dense in-context copying signal (default %(default)s)")
    data.add_argument("--reread-gap", type=int, default=d.reread_gap,
                      help="most bytes of other training text after each reading of a reread window, so the "
                           "passage crosses other prose in memory before it returns (default %(default)s: back to back)")
    data.add_argument("--balance-windows", action="store_true",
                      help="every window weighs the same in the loss (a task window scoring 30 answers as much as "
                           "a prose window scoring every byte)")
    data.add_argument("--heldout-fraction", type=float, default=d.heldout_fraction,
                      help="share of documents held out for evaluation, by id hash (default %(default)s)")
    data.add_argument("--data-note", default="", help="where the data came from (recorded in the checkpoint)")
    model = parser.add_argument_group("model")
    model.add_argument("--preset", default=None, choices=[*PRESETS, *PAPER_PRESETS], help="model preset (default hope, or the recipe's)")
    model.add_argument("--set", dest="overrides", action="append", type=_override, default=[], metavar="KEY=VALUE",
                       help="override a model config field, e.g. --set d_model=128 --set cms_periods=[1,4]")
    run = parser.add_argument_group("training")
    run.add_argument("--out", required=True, help="checkpoint path (.safetensors); metrics go to <out>.metrics.jsonl")
    run.add_argument("--recipe", default=None, metavar="NAME|FILE.json",
                     help=f"run a whole curriculum ({', '.join(RECIPES)} or a recipe file): its stages set steps, "
                          "lengths, rates and the task mixture; stages already done are skipped, an interrupted one resumes")
    run.add_argument("--steps", type=int, default=d.steps)
    run.add_argument("--batch-size", type=int, default=d.batch_size, help="windows per step over all processes")
    run.add_argument("--seq-len", type=int, default=d.seq_len, help="bytes per window (fresh memory state per window)")
    run.add_argument("--bptt", type=int, default=d.bptt, help="segment length for truncated backprop through the state")
    run.add_argument("--lr", type=float, default=d.lr)
    run.add_argument("--min-lr", type=float, default=d.min_lr)
    run.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    run.add_argument("--weight-decay", type=float, default=d.weight_decay)
    run.add_argument("--grad-clip", type=float, default=d.grad_clip, help="max gradient norm; 0 = off")
    run.add_argument("--precision", default=d.precision, choices=["auto", "fp32", "bf16"],
                     help="auto: bf16 autocast on a GPU, fp32 on CPU")
    run.add_argument("--seed", type=int, default=d.seed)
    run.add_argument("--device", default=d.device, help="auto, cpu or cuda (under torchrun: each process's own GPU)")
    run.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    run.add_argument("--resume", action="store_true", help="continue the interrupted run that wrote --out")
    run.add_argument("--init", default="", metavar="CHECKPOINT",
                     help="start from a checkpoint's weights and config (fine-tuning: new optimizer and schedule)")
    evaluation = parser.add_argument_group("checkpoints, evaluation and logging")
    evaluation.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="0 = only at the end")
    evaluation.add_argument("--eval-every", type=int, default=d.eval_every, help="0 = only at the end")
    evaluation.add_argument("--eval-windows", type=int, default=d.eval_windows, help="held-out windows evaluated")
    evaluation.add_argument("--eval-task-samples", type=int, default=d.eval_task_samples)
    evaluation.add_argument("--log-every", type=int, default=d.log_every)
    evaluation.add_argument("--wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)")
    evaluation.add_argument("--wandb-project", default=d.wandb_project)
    evaluation.add_argument("--wandb-run-name", default=None)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        out=args.out, data=list(args.data), preset=args.preset or ("" if args.recipe else "hope"), model_overrides=dict(args.overrides),
        tasks=[t.strip() for t in args.tasks.split(",") if t.strip()], task_fraction=args.task_fraction,
        task_phrasings=args.task_phrasings, reread_fraction=args.reread_fraction, reread_gap=args.reread_gap, balance_windows=args.balance_windows, heldout_fraction=args.heldout_fraction, steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len,
        bptt=args.bptt, lr=args.lr, min_lr=args.min_lr, warmup_steps=args.warmup_steps, weight_decay=args.weight_decay,
        grad_clip=args.grad_clip, precision=args.precision, seed=args.seed, device=args.device,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every, eval_windows=args.eval_windows,
        eval_task_samples=args.eval_task_samples, log_every=args.log_every, wandb=args.wandb,
        wandb_project=args.wandb_project, wandb_run_name=args.wandb_run_name, resume=args.resume, init=args.init,
        data_note=args.data_note)


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if args.threads < 1:
            raise CommandError(f"--threads must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    if args.recipe:
        config.command = "python -m nested_learning " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        report = run_recipe(load_recipe(args.recipe), config, progress=lambda m: print(m, file=sys.stderr, flush=True))
    else:
        report = train(config)
    on = report["updates_on"]
    summary = {key: value for key, value in (("heldout_bpb", on.get("heldout_bpb")),
                                             ("random_init_heldout_bpb", report.get("random_init_heldout_bpb")))
               if value is not None}
    print(json.dumps({**summary, "tasks": {t: v["answer_accuracy"] for t, v in on["tasks"].items()}}))
    return 0
