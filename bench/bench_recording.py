"""Recording budget (issue 3; run by hand): bytes per token and time overhead of ``record`` against a
plain forward of the same model, interleaved in one process (median of N rounds); and the dashboard's
guarded run in pieces (``--piece-tokens``, what Explore does so a deadline or Reset can stop a run)
against one guarded call.

Default: a random-init hope preset (the shipped model's size), T = 512, CPU, one PyTorch thread.
``--checkpoint assets/hope-default.safetensors --tokens 2048`` measures the shipped model at the run limit;
``--bench-size`` the preset at bench_model's size (4 layers, d_model 256, 4 heads).
"""
from __future__ import annotations

import argparse
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--preset", default="hope")
    parser.add_argument("--checkpoint", default="", help="measure this checkpoint instead of a preset")
    parser.add_argument("--piece-tokens", type=int, default=512)
    parser.add_argument("--bench-size", action="store_true", help="4 layers, d_model 256, 4 heads (bench_model's size)")
    args = parser.parse_args()
    size = dict(n_layers=4, d_model=256, n_heads=4) if args.bench_size else {}
    model = (load_checkpoint(args.checkpoint, device="cpu") if args.checkpoint
             else HopeTransformer.from_preset(args.preset, device="cpu", **size)).eval()
    torch.set_num_threads(1)  # as the dashboard runs
    text = ("the quiet river bends past the old mill, and the miller counts the sacks. " * 64)[:args.tokens]
    tokens = torch.tensor(list(text.encode()), dtype=torch.long)

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
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {}
        for T in (args.tokens // 2, args.tokens):
            path = os.path.join(tmp, f"{T}.safetensors")
            record(model, tokens[:T])[0].save(path)
            sizes[T] = os.path.getsize(path)
    per_token = (sizes[args.tokens] - sizes[args.tokens // 2]) / (args.tokens - args.tokens // 2)
    label = args.checkpoint or args.preset + (" (bench size)" if args.bench_size else "")
    print(f"{label}, T={args.tokens}: forward {forward_s * 1e3:.1f} ms, record {record_s * 1e3:.1f} ms, "
          f"overhead {100 * (record_s / forward_s - 1):.1f}%")
    once_s, pieces_s = (statistics.median(times[n]) for n in ("guarded", "pieces"))
    print(f"guarded run: one call {once_s * 1e3:.1f} ms, in {args.piece_tokens}-token pieces {pieces_s * 1e3:.1f} ms "
          f"(ratio {pieces_s / once_s:.3f})")
    print(f"file: {per_token / 1024:.2f} KiB per token + {(sizes[args.tokens] - per_token * args.tokens) / 2**20:.2f} MiB "
          f"fixed (initial states and CMS parameters)")


if __name__ == "__main__":
    main()
