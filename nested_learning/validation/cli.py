"""``python -m nested_learning validate``: run the validation suite and write JSON / markdown results.

Exit status 0 when the suite ran (properties that do not hold are reported as FAIL, not as an
error); 1 with ``--strict`` when any property fails; 2 on bad input (one line on stderr).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from ..checkpoint import model_from_source
from ..cli import CommandError
from ..config import PRESETS
from .report import write_json, write_markdown
from .prose import HeldoutProse
from .suite import DEFAULT, EXPERIMENTS, QUICK, heldout_fraction_of, parse_only, run_metadata, run_suite


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, help="a .safetensors checkpoint (default: random init of --preset)")
    parser.add_argument("--preset", default="hope", choices=sorted(PRESETS), help="preset for a random-init model")
    parser.add_argument("--baseline", type=Path, help="the same-window transformer checkpoint to compare against "
                        "(e.g. assets/transformer-window16.safetensors)")
    parser.add_argument("--data", action="append", default=None,
                        help="text folder/file for held-out prose (default: the offline corpus, built on the fly)")
    parser.add_argument("--heldout-fraction", type=float, default=None,
                        help="held-out share of --data (default: the checkpoint's training value, else 0.03)")
    parser.add_argument("--model-seed", type=int, default=0, help="seed of the random-init model")
    parser.add_argument("--quick", action="store_true", help="tiny counts for tests and smoke runs (numbers prove nothing)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation data and the bootstrap")
    parser.add_argument("--only", help=f"comma-separated experiments to run (default all: {', '.join(EXPERIMENTS)})")
    parser.add_argument("--json", type=Path, help="write the results here (the dashboard reads this file)")
    parser.add_argument("--report", type=Path, help="write a markdown report here")
    parser.add_argument("--label", default="", help="a line shown at the top of the report (e.g. 'random init')")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any property fails")


def _check_output(path: Path | None, flag: str):
    if path is not None and not path.parent.is_dir():  # fail before minutes of work, not after
        raise CommandError(f"{flag} {path}: directory {path.parent} does not exist")


def run(args: argparse.Namespace) -> int:
    only = parse_only(args.only)
    _check_output(args.json, "--json")
    _check_output(args.report, "--report")
    if args.threads is not None:
        if args.threads < 1:
            raise CommandError(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    model, source = model_from_source(args.checkpoint, args.preset, args.model_seed, args.device)
    baseline = None
    if args.baseline is not None:
        baseline, _ = model_from_source(args.baseline, args.preset, args.model_seed, args.device)
    prose = None
    if args.data or args.heldout_fraction is not None:
        fraction = args.heldout_fraction if args.heldout_fraction is not None else heldout_fraction_of(model)
        try:
            prose = HeldoutProse(args.data, fraction)
        except ValueError as e:
            raise CommandError(f"--data: {e}") from None
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = time.perf_counter()

    def progress(fraction: float, message: str):
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    results = run_suite(model, quick=args.quick, progress=progress, seed=args.seed, only=only, prose=prose,
                        baseline=baseline)
    meta = run_metadata(model, args.quick, args.seed, QUICK if args.quick else DEFAULT, source,
                        time.perf_counter() - started)
    meta["command"] = "python -m nested_learning " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    meta["label"] = args.label
    meta["load_average_1min_start"] = load_at_start
    meta["baseline"] = str(args.baseline) if args.baseline is not None else None
    for r in results:
        print(f"{r.verdict:8}  {r.title}  ({r.runtime_s:.1f} s)")
        for name, ok in r.checks.items():
            print(f"        {'ok ' if ok else 'NO '} {name}")
    judged = [r for r in results if r.judged]
    print(f"{sum(r.passed for r in judged)}/{len(judged)} properties hold; wall time {meta['wall_time_s']:.1f} s")
    if args.json is not None:
        print(f"results -> {write_json(args.json, results, meta)}")
    if args.report is not None:
        print(f"report -> {write_markdown(args.report, results, meta)}")
    return 1 if args.strict and not all(r.passed for r in judged) else 0
