"""One short check on a CUDA machine (run by hand: ``python bench/gpu_check.py --out gpu.json``).

The test suite runs on CPU; this script checks what only a GPU shows, in well under a minute:
1. exactness on CUDA: each chunked kernel against its per-token oracle, streaming (one call equals
   three calls with the state carried), parameters bit-identical after inference, CPU and CUDA
   giving the same logits for the same weights, every preset and the all-off ablation finite;
2. mixed precision: a bf16-autocast training step gives a finite loss and finite gradients;
3. speed: forward tokens/s per preset (batch 1 and 32, T = 512) and one training step of "hope"
   vs "transformer" (batch 64), interleaved, median of N rounds.
Each part reports its own error instead of stopping the others.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_model import interleaved  # noqa: E402
from nested_learning import Ablation, HopeTransformer  # noqa: E402
from nested_learning.config import PRESETS  # noqa: E402
from nested_learning.training.loss import segmented_loss  # noqa: E402
from nested_learning.ops import (block_delta_rule, block_delta_rule_reference, gated_delta_rule,  # noqa: E402
                                 gated_delta_rule_reference, l2norm)

CUDA = torch.device("cuda")


def rel(a, b) -> float:
    return ((a - b).norm() / b.norm()).item()


def kernels() -> dict:
    g = torch.Generator(device=CUDA).manual_seed(0)
    B, H, T, d = 2, 4, 150, 64
    q, k = (l2norm(torch.randn(B, H, T, d, device=CUDA, generator=g)) for _ in range(2))
    v = torch.randn(B, H, T, d, device=CUDA, generator=g)
    eta = torch.rand(B, H, T, device=CUDA, generator=g)
    log_retention = torch.log(0.8 + 0.2 * torch.rand(B, H, T, device=CUDA, generator=g))
    memory = torch.randn(B, H, d, d, device=CUDA, generator=g)
    out, ref = gated_delta_rule(q, k, v, eta, log_retention, memory), gated_delta_rule_reference(q, k, v, eta, log_retention, memory)
    errors = {"gated_delta_output": rel(out.output, ref.output), "gated_delta_memory": rel(out.memory, ref.memory)}
    # A CMS level's shape (values wider than keys: the scan's other form) and the square one.
    wide_v = torch.randn(B, 1, T, 4 * d, device=CUDA, generator=g)
    for name, (values, start) in {"block_delta": (v, memory), "block_delta_wide": (wide_v, memory[:, :1].repeat(1, 1, 4, 1))}.items():
        keys, queries, rate = (x[:, :values.shape[1]] for x in (k, q, eta / 4))
        args = (queries, keys, values, rate, log_retention[:, :values.shape[1], 0], start, torch.zeros_like(start), 3, 4)
        got, want = block_delta_rule(*args), block_delta_rule_reference(*args)
        errors.update({f"{name}_output": rel(got.output, want.output), f"{name}_memory": rel(got.memory, want.memory)})
    return {"relative_errors": errors, "all_below_1e-4": all(e < 1e-4 for e in errors.values())}


def model_exactness() -> dict:
    torch.manual_seed(0)
    model = HopeTransformer.from_preset("hope", device="auto").eval()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    tokens = torch.randint(0, 256, (2, 300), device=CUDA)
    with torch.no_grad():
        whole = model(tokens)
        state, pieces = None, []
        for a, b in ((0, 77), (77, 200), (200, 300)):
            out = model(tokens[:, a:b], state=state)
            pieces.append(out.logits)
            state = out.state
        cpu = HopeTransformer(model.config)
        cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
        cpu_logits = cpu.eval()(tokens.cpu()).logits
        finite = {}
        for preset in PRESETS:
            other = HopeTransformer.from_preset(preset, device="auto").eval()
            finite[preset] = bool(other(tokens).logits.isfinite().all())
        finite["hope, all off"] = bool(model(tokens, ablation=Ablation.all_off()).logits.isfinite().all())
    return {"device": str(next(model.parameters()).device),
            "streaming_max_abs_diff": (torch.cat(pieces, 1) - whole.logits).abs().max().item(),
            "parameters_unchanged": all(torch.equal(p, before[n]) for n, p in model.named_parameters()),
            "cpu_vs_cuda_max_abs_diff": (cpu_logits - whole.logits.cpu()).abs().max().item(), "finite": finite}


def train_step(model, tokens, autocast: bool) -> torch.Tensor:
    """The trainer's own step (segmented_loss, one segment): mean next-byte loss, gradients accumulated."""
    weights = torch.ones_like(tokens, dtype=torch.float32)
    total, count = segmented_loss(model, tokens, weights, tokens.shape[1], backward_scale=1.0 / (weights[:, 1:].sum()),
                                  autocast_dtype=torch.bfloat16 if autocast else None)
    return total / count


def mixed_precision() -> dict:
    torch.manual_seed(0)
    model = HopeTransformer.from_preset("hope", device="auto").train()
    tokens = torch.randint(0, 256, (8, 257), device=CUDA)
    loss = train_step(model, tokens, autocast=True)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return {"bf16_loss": loss.item(), "bf16_grads_finite": all(bool(g.isfinite().all()) for g in grads),
            "parameters_with_grad": f"{len(grads)}/{len(list(model.parameters()))}"}


def speed(rounds: int) -> dict:
    def synced(fn):
        def go():
            fn()
            torch.cuda.synchronize()
        return go

    out = {}
    for batch in (1, 32):
        tokens = torch.randint(0, 256, (batch, 512), device=CUDA)
        models = {p: HopeTransformer.from_preset(p, device="auto").eval() for p in PRESETS}

        def forward(model):
            return synced(lambda: model(tokens))
        with torch.no_grad():
            times = interleaved({p: forward(m) for p, m in models.items()}, rounds)
        out[f"forward_tokens_per_s_batch{batch}"] = {p: round(batch * 512 / t) for p, t in times.items()}
    tokens = torch.randint(0, 256, (64, 513), device=CUDA)
    models = {p: HopeTransformer.from_preset(p, device="auto").train() for p in ("hope", "transformer")}
    for autocast in (False, True):
        steps = {p: synced(lambda m=m: train_step(m, tokens, autocast)) for p, m in models.items()}
        times = interleaved(steps, max(3, rounds // 2))
        out[f"train_step_ms_batch64_{'bf16' if autocast else 'fp32'}"] = {p: round(1000 * t, 1) for p, t in times.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device")
    report = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name()}
    for name, part in (("kernels", kernels), ("model", model_exactness), ("mixed_precision", mixed_precision),
                       ("speed", lambda: speed(args.rounds))):
        try:
            report[name] = part()
        except Exception:  # report and go on: one broken part must not hide the others
            report[name] = {"error": traceback.format_exc(limit=4)}
        print(name, json.dumps(report[name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
