"""Measure the shipped model's memory targets (docs/results.md; issue: a model whose
memory visibly learns) on held-out prose, against swap / reset controls and a baseline checkpoint.

    python bench/model_targets.py --checkpoint assets/hope-default.safetensors \
        --baseline assets/transformer-window16.safetensors --out reports/model-targets.json

Held-out prose is the training run's held-out split of the offline corpus (same --heldout-fraction),
so none of it was trained on. Prints one line per measurement and writes everything to --out as JSON.
Pass key, copy and recall are also measured in the original wording, the many trained wordings and the
held-out ones side by side (``wordings``); ``--only wordings,gating`` runs just those (issue 27).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nested_learning import phrasings  # noqa: E402
from nested_learning.ablation import Ablation  # noqa: E402
from nested_learning.checkpoint import load_checkpoint  # noqa: E402
from nested_learning.validation import targets  # noqa: E402
from nested_learning.validation.paraphrases import PARAPHRASES  # noqa: E402
from nested_learning.validation.prose import HeldoutProse  # noqa: E402


def jsonable(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=None, help="text folder(s); default: the offline corpus")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--baseline", action="append", default=[], help="checkpoint(s) to compare bits per byte with")
    parser.add_argument("--heldout-fraction", type=float, default=0.03)
    parser.add_argument("--n", type=int, default=32, help="sequences per measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="fewer gaps and distances")
    parser.add_argument("--only", default="", help="comma-separated parts: wordings, gating, variants, targets (the earlier targets, original wording), "
                        "curves (reread, copy, recall and pass key at every distance, and bits per byte: any model), "
                        "long (reread and copy 2,000-8,000 bytes back, pass key at 8,000), written (bits per byte on held-out "
                        "documents with their line breaks), reach (pass key 4,000 bytes back with each memory component off), copy_far (the 32-letter "
                        "copy 1,000 bytes back in the original, trained and held-out wordings), frames (the pass key when the "
                        "question ends as the fact did before the key, and when not, in trained and held-out words) "
                        "(default: everything)")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = load_checkpoint(args.checkpoint, device="cpu")
    n = args.n
    prose = HeldoutProse(args.data, args.heldout_fraction)
    filler = prose.filler
    passages, fillers = prose.passages(n, 128, "targets"), prose.fillers(n, 2048, "targets")
    report = {"checkpoint": args.checkpoint, "config": model.config.to_dict(), "n": n, "prose": prose.source,
              "heldout_bytes": len(prose.text)}

    def show(name, value):
        report.setdefault(name, []).append(jsonable(value))
        print(name, json.dumps(jsonable(value)), flush=True)

    if args.only:
        parts = {p.strip() for p in args.only.split(",")}
        if "wordings" in parts:
            measure_wordings(model, n, filler, show)
        if "variants" in parts:
            measure_variants(model, prose, show)
        if "gating" in parts:
            for gap in (100, 500):
                show("gating", targets.gating(model, passages, prose.fillers(n, gap, f"targets/{gap}"), gap))
        if "curves" in parts:  # every distance of the full report, for any model (a baseline too)
            measure_curves(model, n, passages, fillers, filler, [100, 250, 500, 1000], show)
            windows = torch.tensor([list(w.encode("ascii")) for w in prose.windows(n, 2048, "targets")])
            show("bits_per_byte", {"model": targets.bits_per_byte(model, windows)})
            for path in args.baseline:
                show("bits_per_byte", {path: targets.bits_per_byte(load_checkpoint(path, device="cpu"), windows)})
        if "bindings" in parts:  # recall with each binding of the pairs, the rest of the wording the original
            measure_bindings(model, n, filler, show)
        if "written" in parts:  # held-out documents with their line breaks, as training reads text
            windows = torch.tensor([list(w.encode("ascii")) for w in prose.windows(n, 2048, "targets", as_written=True)])
            show("bits_per_byte_as_written", {"model": targets.bits_per_byte(model, windows)})
        if "long" in parts:  # the curves past the training windows' 2,048 bytes, to 8,000
            measure_long(model, n, passages, prose.fillers(n, max(LONG_GAPS), "targets/long"), filler, show)
        if "copy_far" in parts:  # the copy target's far end (1,000 bytes back) in every wording split
            for split, out in targets.across_wordings("repeat", model, n, controls=("own", "swap"), gap=1000,
                                                      filler=filler, decoy=False).items():
                show("wordings_far", {"task": "repeat", **out, "templates": out["wordings"], "wordings": split})
        if "reach" in parts:  # what carries a pass key 4,000 bytes back: each component switched off in turn
            measure_reach(model, n, filler, show)
        if "frames" in parts:  # the pass key when the question ends as the fact did before the key, and when not
            measure_frames(model, n, filler, show)
        if "targets" in parts:  # the earlier targets in the original wording, at the gaps they are judged
            show("reread", targets.reread(model, passages, fillers, 1000))
            show("copy", targets.copy(model, n, 100, filler))
            show("recall", targets.recall(model, n, 16, 32, filler))
            for distance in (1000, 4000):
                show("passkey", targets.passkey(model, n, distance, filler))
            show("phrase", targets.phrase(model))
            windows = torch.tensor([list(w.encode("ascii")) for w in prose.windows(n, 2048, "targets")])
            show("bits_per_byte", {"model": targets.bits_per_byte(model, windows)})
            for path in args.baseline:
                show("bits_per_byte", {path: targets.bits_per_byte(load_checkpoint(path, device="cpu"), windows)})
        finish(report, started, args.out)
        return
    gaps = [100, 1000] if args.quick else [100, 250, 500, 1000]
    for gap in gaps:
        show("reread", targets.reread(model, passages, fillers, gap))
    # What wears a reread away: the same gaps filled with text that writes little new (decay alone) or much.
    between = {"spaces": " " * 2048, "one_letter": "e" * 2048, "phrase": ("the cat sat on the mat. " * 90)[:2048]}
    for name, text in ([] if args.quick else between.items()):
        for gap in (100, 1000):
            show("reread_between", {"filler": name, **targets.reread(model, passages, [text] * n, gap, controls=("own",))})
    measure_variants(model, prose, show)
    measure_curves(model, n, None, None, filler, gaps, show, quick=args.quick)
    show("phrase", targets.phrase(model))
    for gap in (100, 500):
        show("gating", targets.gating(model, passages, prose.fillers(n, gap, f"targets/{gap}"), gap))
    measure_wordings(model, n, filler, show)
    windows = torch.tensor([list(w.encode("ascii")) for w in prose.windows(n, 2048, "targets")])
    show("bits_per_byte", {"model": targets.bits_per_byte(model, windows)})
    for path in args.baseline:
        show("bits_per_byte", {path: targets.bits_per_byte(load_checkpoint(path, device="cpu"), windows)})
    ablations = {"no_self_modification": Ablation(self_modification=False), "no_adaptive_lr": Ablation(adaptive_lr=False),
                 "no_cms": Ablation(cms=False), "no_memory": Ablation(memory=False)}
    for name, ablation in ablations.items():
        show("ablation_reread", {"ablation": name, **targets.reread(model, passages, fillers, 500, ablation=ablation)})
        show("ablation_copy", {"ablation": name, **targets.copy(model, n, 500, filler, ablation=ablation)})
    code = b"".join(p.read_bytes() for p in sorted(Path(__file__).resolve().parents[1].glob("nested_learning/*.py")))
    rng = torch.Generator().manual_seed(0)
    inputs = {"prose": prose.text.encode("ascii"), "code": code, "one_byte": b"x" * 16384, "spaces": b" " * 16384,
              "phrase": b"the cat sat on the mat. " * 700, "random_bytes": bytes(torch.randint(0, 256, (16384,), generator=rng).tolist())}
    for name, text in inputs.items():
        show("streaming", {"input": name, **targets.streaming(model, (text * (16384 // len(text) + 1))[:16384])})
    finish(report, started, args.out)


def measure_curves(model, n: int, passages, fillers, filler, gaps, show, quick: bool = False):
    """Copy at each gap, recall at each spread and the pass key at each distance (with ``passages``, the
    reread at each gap first)."""
    if passages is not None:
        for gap in gaps:
            show("reread", targets.reread(model, passages, fillers, gap))
    for gap in gaps:
        show("copy", targets.copy(model, n, gap, filler))
    for spread in ([32] if quick else [0, 32, 64]):
        show("recall", targets.recall(model, n, 16, spread, filler))
    for distance in ([1000] if quick else [256, 1000, 2000, 4000]):
        show("passkey", targets.passkey(model, n, distance, filler))


LONG_GAPS = (2000, 4000, 8000)  # bytes between a reading and its reread or copy, beyond every training window


def measure_long(model, n: int, passages, long_fillers, filler, show):
    """The reread and the copy at LONG_GAPS, the pass key 8,000 bytes back (fillers of their own: the
    shorter gaps' fillers hold 2,048 bytes)."""
    for gap in LONG_GAPS:
        show("reread", targets.reread(model, passages, long_fillers, gap))
    for gap in LONG_GAPS:
        show("copy", targets.copy(model, n, gap, filler))
    show("passkey", targets.passkey(model, n, max(LONG_GAPS), filler))


def measure_bindings(model, n: int, filler, show):
    """Recall of 16 pairs spread 48 bytes with each trained and held-out binding ("{k}={v}", "{k} has {v}"
    ...) in the original head, separator and question: how far the binding puts a value from its key."""
    original = phrasings.ORIGINAL["recall"]
    for split in ("trained", "heldout"):
        for pair, query in dict.fromkeys((w.pair, w.query) for w in phrasings.wordings("recall", split)):
            wording = phrasings.RecallWording(original.head, pair, query, original.separator, original.ask)
            out = targets.recall(model, n, 16, 48, filler, controls=("own", "swap"), wording=wording)
            show("bindings", {"binding": pair, "split": split, "bytes_between": len(pair) - len("{k}{v}"), **out})


def measure_variants(model, prose, show):
    """Rereads that are not verbatim: the 57 passages of paraphrases.py, 100 and 1,000 bytes of held-out
    prose between the readings, verbatim, shuffled, corrupted and paraphrased."""
    pairs = PARAPHRASES
    for gap in (100, 1000):
        for row in targets.reread_variants(model, pairs, prose.fillers(len(pairs), gap + 200, f"variants/{gap}"), gap):
            show("reread_variants", row)


def measure_reach(model, n: int, filler, show, distance: int = 4000):
    """The pass key ``distance`` bytes back (own memory) with the full model and with each memory component
    off in turn (retention, the CMS and each of its levels, self-modification, the adaptive learning rate):
    which part of the memory holds a key that long."""
    levels = len(model.config.cms_periods)
    switches = ["", "retention", *(["cms", *(f"cms.{i}" for i in range(levels))] if levels else []),
                "self_modification", "adaptive_lr"]
    for names in switches:
        show("reach", {"ablation": names or "none", **targets.passkey(
            model, n, distance, filler, ablation=Ablation.from_names(names), controls=("own",))})


def measure_frames(model, n: int, filler, show, distance: int = 1000, shared: int = 6):
    """The pass key ``distance`` bytes back in four groups of wordings: trained words whose question ends
    with at least ``shared`` bytes of the fact before the key and those whose question does not; the
    held-out words as they are (none shares) and echoed (each question ending as its fact did)."""
    trained = phrasings.wordings("passkey", "trained")
    heldout = phrasings.wordings("passkey", "heldout")
    groups = {"trained_shared": [w for w in trained if w.shared_ending() >= shared],
              "trained_different": [w for w in trained if w.shared_ending() < shared],
              "heldout": list(heldout), "heldout_echoed": [w.echoed() for w in heldout]}
    for name, group in groups.items():
        out = targets.by_wording(targets.passkey, model, tuple(group), n, distance=distance, filler=filler,
                                 controls=("own", "swap"))
        show("passkey_frames", {"group": name, "templates": len(group), "sampled": out["wordings"],
                                "shared_bytes": sorted({w.shared_ending() for w in group}), **out})


def measure_wordings(model, n: int, filler, show):
    """Pass key at 1,000 bytes, a 32-letter copy 100 bytes back and recall of 16 pairs spread 48 bytes
    (beyond the reach of 36) in the original, the trained and the held-out wordings, own and swap."""
    settings = {"passkey": dict(distance=1000, filler=filler), "repeat": dict(gap=100, filler=filler, decoy=False),
                "recall": dict(n_pairs=16, spread=48, filler=filler)}
    for task, kwargs in settings.items():
        for split, out in targets.across_wordings(task, model, n, controls=("own", "swap"), **kwargs).items():
            show("wordings", {"task": task, **out, "templates": out["wordings"], "wordings": split})


def finish(report: dict, started: float, out: str):
    report["runtime_s"] = time.perf_counter() - started
    if out:
        Path(out).write_text(json.dumps(report, indent=1, sort_keys=True))
    print(f"done in {report['runtime_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
