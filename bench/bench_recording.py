"""Recording budget (issue 3; run by hand): bytes per token and time overhead of ``record`` against a
plain forward of the same model, interleaved in one process (median of N rounds).

Default: the benchmark config (hope preset: 4 layers, d_model 256, 4 heads), T = 512, CPU.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from anywhere without installing
from nested_learning import HopeTransformer
from nested_learning.recording import record


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--preset", default="hope")
    args = parser.parse_args()
    model = HopeTransformer.from_preset(args.preset, device="cpu").eval()
    tokens = torch.randint(0, 256, (args.tokens,), generator=torch.Generator().manual_seed(0))

    def forward():
        with torch.no_grad():
            model(tokens[None])

    def recorded():
        record(model, tokens)

    times = {"forward": [], "record": []}
    for r in range(args.rounds + 2):
        for name, fn in (("forward", forward), ("record", recorded)):
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
    print(f"{args.preset}, T={args.tokens}: forward {forward_s * 1e3:.1f} ms, record {record_s * 1e3:.1f} ms, "
          f"overhead {100 * (record_s / forward_s - 1):.1f}%")
    print(f"file: {per_token / 1024:.2f} KiB per token + {(sizes[args.tokens] - per_token * args.tokens) / 2**20:.2f} MiB "
          f"fixed (initial states and CMS parameters)")


if __name__ == "__main__":
    main()
