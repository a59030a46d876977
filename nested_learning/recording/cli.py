"""``python -m nested_learning record``: run the model on a text and save a per-token recording."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from ..ablation import Ablation
from ..checkpoint import model_from_source
from ..cli import CommandError
from ..config import PRESETS
from .recorder import DEFAULT_MAX_TOKENS, record


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the text to read")
    source.add_argument("--file", type=Path, help="a file to read (any bytes: the model reads UTF-8 bytes)")
    parser.add_argument("--checkpoint", type=Path, help="a .safetensors checkpoint (default: random init)")
    parser.add_argument("--preset", default="hope", choices=sorted(PRESETS), help="preset for a random-init model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-init model")
    parser.add_argument("--ablate", default="", help="components to switch off, e.g. memory,cms.2,test_time_updates")
    parser.add_argument("--out", type=Path, required=True, help="where to write the recording (.safetensors)")
    parser.add_argument("--csv", type=Path, help="also export the per-token table as CSV")
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="refuse longer inputs")
    parser.add_argument("--top-k", type=int, default=5, help="predictions kept per token")
    parser.add_argument("--attention", action="store_true", help="keep the attention weights")
    parser.add_argument("--full-states", action="store_true", help="also store every memory matrix (float16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")


def run(args: argparse.Namespace) -> int:
    ablation = Ablation.from_names(args.ablate)
    if args.max_tokens < 1:
        raise CommandError(f"--max-tokens must be positive, got {args.max_tokens}")
    if args.file is not None:
        if not args.file.is_file():
            raise CommandError(f"{args.file}: no such file")
        if args.file.stat().st_size > args.max_tokens:  # check before reading a huge file
            raise CommandError(f"{args.file} is {args.file.stat().st_size} bytes; the limit is {args.max_tokens} (--max-tokens)")
        tokens = torch.tensor(list(args.file.read_bytes()), dtype=torch.long)
    else:
        tokens = args.text
    model, origin = model_from_source(args.checkpoint, args.preset, args.seed, args.device)
    recording, _ = record(model, tokens, ablation=ablation, top_k=args.top_k, attention=args.attention,
                          full_states=args.full_states, max_tokens=args.max_tokens)
    if args.file is not None:
        recording.text = args.file.read_bytes().decode("utf-8", errors="replace")
    recording.save(args.out)
    if args.csv is not None:
        recording.to_csv(args.csv)
    print(summary(recording, origin, args.out))
    return 0


def summary(recording, origin: str, out: Path) -> str:
    headline = recording.summary()
    lines = [f"recorded {recording.n_tokens} tokens ({origin}) -> {out}"]
    if not math.isnan(headline["mean_loss"]):
        lines.append(f"mean next-token loss {headline['mean_loss']:.3f} nats ({headline['bits_per_byte']:.3f} bits/byte)")
    if recording.ablation.names_off():
        lines.append("switched off: " + ", ".join(recording.ablation.names_off()))
    if recording.memory_layers:
        surprise = "  ".join(f"L{i} {recording.memory_stream(i, 'surprise').mean():.3f}"
                             for i in recording.memory_layers)
        lines.append(f"mean surprise per layer: {surprise}")
    events = recording.cms_events()
    if len(events):
        counts = events.groupby(["layer", "level"]).size()
        for layer in sorted(events["layer"].unique()):
            per_level = ", ".join(f"level {lvl} (period {recording.config.cms_periods[lvl]}): {n}"
                                  for (lay, lvl), n in counts.items() if lay == layer)
            lines.append(f"CMS updates, layer {layer}: {per_level}")
    return "\n".join(lines)
