"""Speed benchmark for issue 2 (run by hand: ``python bench/bench_model.py``).

1. Forward time of "hope" vs the same-size "transformer" preset (4 layers, d_model 256, 4 heads,
   T = 512, batch 1, CPU, fp32, no_grad), interleaved in one process, median of N rounds.
2. The chunk-wise gated delta rule vs its per-token oracle at head width 64, T = 2048 (the memory
   path computes outputs and the final memory; the per-token errors, asked for when recording,
   cost two more matmuls per chunk).
3. ``--checkpoints A B ...``: the given checkpoints' own forwards at 512 and 2,048 tokens, interleaved,
   against the first (the shipped models' cost at their own size). With ``--targets`` each forward gets
   the text's next tokens, as ``record()`` reads text: a ``cms_objective="lm"`` model then learns from
   them (its pieces' backward passes are part of reading), the others ignore them.
Timings on shared VMs swing 10-15%: only the ratios are meaningful.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
import statistics
import time

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from anywhere without installing
from nested_learning import HopeTransformer, load_checkpoint
from nested_learning.ops import gated_delta_rule, gated_delta_rule_reference, l2norm


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(fns: dict, rounds: int, warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return {name: statistics.median(t) for name, t in times.items()}


def forward_times(models: dict, rounds: int, T: int, targets: bool = False) -> dict[str, float]:
    """One T-token forward of each model (batch 1, no_grad), interleaved; median seconds per name.
    ``targets``: pass each position's next token (the last has none), as the recorder does."""
    tokens = torch.randint(0, 256, (1, T + 1), generator=torch.Generator().manual_seed(0))
    tokens, next_tokens = tokens[:, :-1], tokens[:, 1:].clone()
    next_tokens[:, -1] = -100

    def run(model):
        def go():
            with torch.no_grad():  # an lm model's levels take their gradients inside, under enable_grad
                model(tokens, targets=next_tokens if targets else None)
        return go
    return interleaved({name: run(m) for name, m in models.items()}, rounds)


def model_ratio(rounds: int, presets=("hope", "transformer"), T: int = 512) -> dict[str, float]:
    return forward_times({p: HopeTransformer.from_preset(p, device="cpu", n_layers=4, d_model=256, n_heads=4).eval()
                          for p in presets}, rounds, T)


def checkpoint_times(paths: list[str], rounds: int, T: int, targets: bool = False) -> dict[str, float]:
    """The shipped models' own cost: each checkpoint's forward, interleaved."""
    return forward_times({path: load_checkpoint(path, device="cpu").eval() for path in paths}, rounds, T, targets)


def kernel_ratio(rounds: int, T: int = 2048, d: int = 64, H: int = 4) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    q, k = (l2norm(torch.randn(1, H, T, d, generator=g)) for _ in range(2))
    v = torch.randn(1, H, T, d, generator=g)
    eta = torch.rand(1, H, T, generator=g)
    log_retention = torch.log(0.9 + 0.1 * torch.rand(1, H, T, generator=g))
    memory = torch.zeros(1, H, d, d)
    return interleaved({  # DeltaRuleMemory's path (outputs, memory), and with the per-token errors too
        "chunked": lambda: gated_delta_rule(q, k, v, eta, log_retention, memory, return_error=False),
        "chunked_with_errors": lambda: gated_delta_rule(q, k, v, eta, log_retention, memory),
        "per_token_oracle": lambda: gated_delta_rule_reference(q, k, v, eta, log_retention, memory),
    }, rounds)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--all-presets", action="store_true", help="time every preset against the transformer")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()],
                        help="torch thread counts to time, one after the other (default: 1 and torch's default)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="repeat each forward measurement (a whole interleaved median) this many times and "
                             "print every ratio: on a shared VM one run can land in a slow spell")
    parser.add_argument("--checkpoints", nargs="+", default=[],
                        help="time these checkpoints' forwards instead (512 and 2,048 tokens), against the first")
    parser.add_argument("--targets", action="store_true",
                        help="with --checkpoints: give each forward the next tokens (an lm-objective model learns from them)")
    args = parser.parse_args()
    if args.rounds < 1 or args.repeats < 1 or min(args.threads) < 1:
        parser.error("--rounds, --repeats and --threads must be positive")
    torch.manual_seed(0)
    if args.checkpoints:
        for threads in dict.fromkeys(args.threads):
            torch.set_num_threads(threads)
            for T in (512, 2048):
                times = checkpoint_times(args.checkpoints, args.rounds, T, args.targets)
                base = times[args.checkpoints[0]]
                print(f"forward of each checkpoint{' with targets' if args.targets else ''}, T={T}, B=1, "
                      f"{threads} threads, median of {args.rounds}:")
                for path, t in times.items():
                    print(f"  {path:50s} {t * 1e3:8.1f} ms  {t / base:5.2f}x the first")
        return
    presets = ("hope", "hope-paper", "hope-attention", "titans", "transformer") if args.all_presets else ("hope", "transformer")
    for threads in dict.fromkeys(args.threads):  # the small memory ops gain little from threads, big matmuls do
        torch.set_num_threads(threads)
        ratios = {name: [] for name in presets}
        for repeat in range(args.repeats):
            times = model_ratio(args.rounds, presets)
            base = times["transformer"]
            print(f"forward, 4x256, 4 heads, T=512, B=1, {threads} threads, median of {args.rounds}"
                  + (f" (run {repeat + 1} of {args.repeats})" if args.repeats > 1 else "") + ":")
            for name, t in times.items():
                print(f"  {name:15s} {t * 1e3:8.1f} ms  {512 / t:9.0f} tok/s  {t / base:5.2f}x transformer")
                ratios[name].append(t / base)
        if args.repeats > 1:
            for name in presets[:-1]:
                print(f"  {name} x transformer over {args.repeats} runs, {threads} threads: "
                      + " ".join(f"{r:.2f}" for r in ratios[name]) + f" (median {statistics.median(ratios[name]):.2f})")
        kt = kernel_ratio(max(3, args.rounds // 3))
        oracle = kt["per_token_oracle"]
        print(f"gated delta rule, d=64, T=2048, H=4, default chunk, {threads} threads: oracle {oracle * 1e3:.1f} ms; "
              f"chunked {kt['chunked'] * 1e3:.1f} ms ({oracle / kt['chunked']:.1f}x), with errors "
              f"{kt['chunked_with_errors'] * 1e3:.1f} ms ({oracle / kt['chunked_with_errors']:.1f}x)")


if __name__ == "__main__":
    main()
