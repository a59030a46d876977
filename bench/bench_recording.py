"""Recording budget (issue 3; run by hand): bytes per token and time overhead of ``record`` against a
plain forward of the same model, interleaved in one process (median of N rounds); and the dashboard's
guarded run in pieces (``--piece-tokens``, what Explore does so a deadline or Reset can stop a run)
against one guarded call.

Default: a random-init hope preset (the shipped model's size), T = 512, CPU, one PyTorch thread.
``--checkpoint assets/hope-default.safetensors --tokens 2048`` measures the shipped model at the run limit;
``--bench-size`` the preset at bench_model's size (4 layers, d_model 256, 4 heads).
``--budget-report reports/recording-budget.json`` writes only the file sizes (bytes do not depend on the
machine's load) of the default recording at both sizes, which README and docs/recording.md quote.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
import os
import statistics
import tempfile
import time

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from anywhere without installing
from nested_learning import HopeTransformer, load_checkpoint
from nested_learning.recording import record
from nested_learning.viz.guard import guarded_record, guarded_record_in_pieces


BENCH_SIZE = dict(n_layers=4, d_model=256, n_heads=4)


def file_sizes(model, tokens: torch.Tensor) -> tuple[float, float]:
    """(bytes per token, fixed bytes) of the default recording's file, from files of T/2 and T tokens."""
    T = tokens.numel()
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {n: os.path.getsize(record(model, tokens[:n])[0].save(os.path.join(tmp, f"{n}.safetensors")))
                 for n in (T // 2, T)}
    per_token = (sizes[T] - sizes[T // 2]) / (T - T // 2)
    return per_token, sizes[T] - per_token * T


def budget_report(path: str, tokens: torch.Tensor) -> None:
    rows = []
    for label, size in (("shipped", {}), ("bench", BENCH_SIZE)):
        torch.manual_seed(0)
        model = HopeTransformer.from_preset("hope", device="cpu", **size).eval()
        per_token, fixed = file_sizes(model, tokens)
        rows.append({"size": label, "d_model": model.config.d_model, "n_layers": model.config.n_layers,
                     "key_expansion": model.config.key_expansion, "tokens": tokens.numel(),
                     "bytes_per_token": per_token, "fixed_bytes": fixed})
    Path(path).write_text(json.dumps({"preset": "hope", "recording": "default (no attention, no full states)",
                                      "sizes": rows}, indent=1) + "\n")
    print(json.dumps(rows, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--preset", default="hope")
    parser.add_argument("--checkpoint", default="", help="measure this checkpoint instead of a preset")
    parser.add_argument("--piece-tokens", type=int, default=512)
    parser.add_argument("--bench-size", action="store_true", help="4 layers, d_model 256, 4 heads (bench_model's size)")
    parser.add_argument("--budget-report", default="", help="write the file sizes at both sizes to this JSON and stop")
    args = parser.parse_args()
    size = BENCH_SIZE if args.bench_size else {}
    model = (load_checkpoint(args.checkpoint, device="cpu") if args.checkpoint
             else HopeTransformer.from_preset(args.preset, device="cpu", **size)).eval()
    torch.set_num_threads(1)  # as the dashboard runs
    text = ("the quiet river bends past the old mill, and the miller counts the sacks. " * 64)[:args.tokens]
    tokens = torch.tensor(list(text.encode()), dtype=torch.long)
    if args.budget_report:
        return budget_report(args.budget_report, tokens)

    def forward():
        with torch.no_grad():
            model(tokens[None])

    def recorded():
        record(model, tokens)

    def guarded_once():
        guarded_record(model, text, max_tokens=args.tokens)

    def guarded_pieces():
        guarded_record_in_pieces(model, text, piece_tokens=args.piece_tokens, max_tokens=args.tokens)

    functions = (("forward", forward), ("record", recorded), ("guarded", guarded_once), ("pieces", guarded_pieces))
    times = {name: [] for name, _ in functions}
    for r in range(args.rounds + 2):
        for name, fn in functions:
            start = time.perf_counter()
            fn()
            if r >= 2:  # warm-up rounds
                times[name].append(time.perf_counter() - start)
    forward_s, record_s = (statistics.median(times[n]) for n in ("forward", "record"))
    per_token, fixed = file_sizes(model, tokens)
    label = args.checkpoint or args.preset + (" (bench size)" if args.bench_size else "")
    print(f"{label}, T={args.tokens}: forward {forward_s * 1e3:.1f} ms, record {record_s * 1e3:.1f} ms, "
          f"overhead {100 * (record_s / forward_s - 1):.1f}%")
    once_s, pieces_s = (statistics.median(times[n]) for n in ("guarded", "pieces"))
    print(f"guarded run: one call {once_s * 1e3:.1f} ms, in {args.piece_tokens}-token pieces {pieces_s * 1e3:.1f} ms "
          f"(ratio {pieces_s / once_s:.3f})")
    print(f"file: {per_token / 1024:.2f} KiB per token + {fixed / 2**20:.2f} MiB "
          f"fixed (initial states and CMS parameters)")


if __name__ == "__main__":
    main()
