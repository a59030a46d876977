"""A verdict on one Explore run: what test-time learning did on this text, against controls.

The run's per-token loss is compared, on the whole run and on its repeated spans (viz.repeats), with
  * the same text read from a reset memory (only when the run continued an earlier memory),
  * the same text read after another document (the memory holds something else: a swap control),
  * the baseline transformer with the same attention window (no test-time memory at all).
Differences are means over the run's tokens with a 95% interval from a bootstrap over blocks of
BLOCK tokens (neighbouring tokens are not independent). No Streamlit here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model import HopeTransformer
from ..recording import Recording
from ..state import HopeState
from ..validation.stats import Estimate, bootstrap
from .guard import guarded_record
from .repeats import Repeat, find_repeats

BLOCK = 32  # tokens per bootstrap unit
OTHER_DOCUMENT = ("Rain fell on the harbour all night. Fishing boats knocked against the pier, gulls slept on the "
                  "roofs of the sheds, and the lighthouse turned its slow beam over the water until morning. ") * 4


@dataclass(frozen=True)
class Verdict:
    table: pd.DataFrame  # one row per condition: mean loss on the run and on repeats, difference from the run
    sentences: list[tuple[bool, str]]  # (test-time learning helped here, the plain statement with numbers)


def block_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, seed: int = 0) -> Estimate:
    """Mean of a - b over the tokens in ``mask`` (all finite ones by default), with a bootstrap interval
    over blocks of BLOCK tokens (each block's mean difference is one unit)."""
    keep = np.isfinite(a) & np.isfinite(b) & (mask if mask is not None else True)
    blocks = [float((a[i:i + BLOCK] - b[i:i + BLOCK])[keep[i:i + BLOCK]].mean())
              for i in range(0, len(a), BLOCK) if keep[i:i + BLOCK].any()]
    estimate = bootstrap(blocks, seed)
    if keep.any():  # the point estimate is the token mean (blocks may hold different numbers of tokens)
        mean = float((a - b)[keep].mean())
        estimate = Estimate(mean, min(estimate.ci_low, mean), max(estimate.ci_high, mean), estimate.n)
    return estimate


def _repeat_mask(n: int, repeats: list[Repeat]) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for r in repeats:
        mask[r.start:r.start + r.length] = True
    return mask


def run_verdict(model: HopeTransformer, recording: Recording, start_state: HopeState | None,
                baseline: HopeTransformer | None = None) -> Verdict:
    """Compare a run (``recording``, read from ``start_state``) with its controls on the same tokens."""
    tokens = recording.tokens
    own = recording.stream("loss").double().numpy()
    repeats = find_repeats(tokens.tolist())
    on_repeats = _repeat_mask(len(own), repeats)
    controls: dict[str, np.ndarray] = {}
    if start_state is not None and start_state.position > 0:
        controls["reset memory"] = guarded_record(model, tokens, ablation=recording.ablation)[0].stream("loss").double().numpy()
    _, other_state = guarded_record(model, OTHER_DOCUMENT, ablation=recording.ablation)
    controls["another document's memory"] = guarded_record(model, tokens, state=other_state,
                                                           ablation=recording.ablation)[0].stream("loss").double().numpy()
    if baseline is not None:
        controls["baseline transformer"] = guarded_record(baseline, tokens)[0].stream("loss").double().numpy()
    rows = [{"condition": "this run", "mean loss": float(np.nanmean(own)),
             "loss on repeats": float(np.nanmean(own[on_repeats])) if on_repeats.any() else np.nan}]
    sentences = []
    for name, loss in controls.items():
        overall = block_difference(own, loss)
        repeat = block_difference(own, loss, on_repeats) if on_repeats.any() else None
        rows.append({"condition": name, "mean loss": float(np.nanmean(loss)),
                     "loss on repeats": float(np.nanmean(loss[on_repeats])) if on_repeats.any() else np.nan,
                     **overall.columns("run minus control"),
                     **(repeat.columns("on repeats: run minus control") if repeat else {})})
        sentences.append(_sentence(name, overall, repeat))
    return Verdict(pd.DataFrame(rows), sentences)


def _sentence(name: str, overall: Estimate, repeat: Estimate | None) -> tuple[bool, str]:
    def say(estimate: Estimate, where: str) -> str:
        if estimate.below(0):
            return f"{-estimate.mean:.3f} nats/byte lower {where} [{-estimate.ci_high:.3f}, {-estimate.ci_low:.3f}]"
        if estimate.above(0):
            return f"{estimate.mean:.3f} nats/byte higher {where} [{estimate.ci_low:.3f}, {estimate.ci_high:.3f}]: it hurt"
        return f"no clear difference {where} ({estimate.mean:+.3f} [{estimate.ci_low:+.3f}, {estimate.ci_high:+.3f}])"
    parts = [say(overall, "over the run")] + ([say(repeat, "on the repeated spans")] if repeat is not None else [])
    helped = overall.below(0) or (repeat is not None and repeat.below(0))
    return helped, f"Against {name}: " + "; ".join(parts) + "."
