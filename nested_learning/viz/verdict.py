"""A verdict on one Explore run: what test-time learning did on this text, against controls.

The run's per-token loss is compared, on the whole run and on its repeated spans (viz.repeats: the
words and sentences it had read before, as the timeline's green bands show them), with
  * the same model reading the same text from the same memory with test-time updates off, and
  * the baseline transformer with the same attention window: neither can learn a repeat within the run,
    so a lower loss on the repeats than theirs is what the memory learned while reading;
  * the same text read from a reset memory (only when the run continued an earlier memory), and
  * the same text read after another document: both learn the repeats as they read, so they ask whether
    what the memory held at the start mattered, not whether learning helped.
Differences are token means with a 95% interval from a bootstrap over blocks of BLOCK tokens (neighbouring
tokens are not independent), each resample the token mean of its blocks, so the estimate lies inside.
No Streamlit here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..model import HopeTransformer
from ..recording import Recording
from ..state import HopeState
from ..validation.stats import CONFIDENCE, N_BOOTSTRAP, Estimate
from .guard import guarded_record
from .repeats import MIN_REPEAT, Repeat, find_repeats

BLOCK = 32  # tokens per bootstrap unit
OTHER_DOCUMENT = ("Rain fell on the harbour all night. Fishing boats knocked against the pier, gulls slept on the "
                  "roofs of the sheds, and the lighthouse turned its slow beam over the water until morning. ") * 4
THIS_RUN, UPDATES_OFF, BASELINE = "this run", "test-time updates off", "baseline transformer"
RESET, OTHER = "reset memory", "another document's memory"
# What each control is, and what this run's lower loss against it rules out (the sentences and the table).
WHAT = {
    UPDATES_OFF: "the same model and starting memory, never writing to it while it reads",
    BASELINE: "a transformer trained alike, with the same attention window and no test-time memory",
    RESET: "the same text read from an empty memory, learning as it reads",
    OTHER: "the same text read after an unrelated document, learning as it reads",
}
RULES_OUT = {
    UPDATES_OFF: "that the weights and the attention window alone explain it",
    BASELINE: "that any model with this attention window would do as well",
    RESET: "that the earlier runs' memory played no part",
    OTHER: "that any starting memory would do as well (it learns the repeats too, so it cannot show whether learning helped)",
}
CANNOT_LEARN = (UPDATES_OFF, BASELINE)  # controls that cannot learn a repeat within the run


@dataclass(frozen=True)
class Verdict:
    headline: tuple[bool, str]  # (test-time learning helped, the answer in one sentence with its numbers)
    sentences: list[tuple[bool, str]]  # per control: (this run did better, "Against <control> (...): ...")
    table: pd.DataFrame  # one row per condition, for people: mean losses and differences as "x [low, high]"
    estimates: dict[tuple[str, str], Estimate]  # (control, "run" or "repeats") -> run minus control
    gains: pd.DataFrame = field(default_factory=pd.DataFrame)  # tokens the memory's writes helped most (token_gains)


def block_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, seed: int = 0) -> Estimate:
    """Token mean of a - b over the tokens in ``mask`` (all finite ones by default), with a bootstrap
    interval over blocks of BLOCK tokens: each resample draws blocks and takes the token mean of their
    tokens, the same statistic as the estimate, so the estimate lies inside the interval."""
    keep = np.isfinite(a) & np.isfinite(b) & (mask if mask is not None else True)
    edges = np.arange(0, len(a), BLOCK)
    if not keep.any():
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    sums = np.add.reduceat(np.where(keep, a - b, 0.0), edges)
    counts = np.add.reduceat(keep.astype(np.float64), edges)
    sums, counts = sums[counts > 0], counts[counts > 0]
    mean = float(sums.sum() / counts.sum())
    if sums.size == 1 or np.allclose(sums / counts, mean, rtol=0, atol=1e-12):  # no spread between blocks
        return Estimate(mean, mean, mean, int(sums.size))
    index = np.random.default_rng(seed).integers(0, sums.size, size=(N_BOOTSTRAP, sums.size))
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(sums[index].sum(axis=1) / counts[index].sum(axis=1), [tail, 100 - tail])
    return Estimate(mean, float(low), float(high), int(sums.size))


def repeat_mask(n: int, repeats: list[Repeat]) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for r in repeats:
        mask[r.start:r.start + r.length] = True
    return mask


def control_losses(model: HopeTransformer, recording: Recording, start_state: HopeState | None,
                   baseline: HopeTransformer | None = None) -> dict[str, np.ndarray]:
    """Each applicable control's per-token loss on the run's tokens, in the order the verdict shows them."""
    tokens, ablation = recording.tokens, recording.ablation
    loss = lambda *args, **kwargs: guarded_record(*args, **kwargs)[0].stream("loss").double().numpy()
    controls: dict[str, np.ndarray] = {}
    if "test_time_updates" in ablation.applicable(model.config):  # the run learned: the same run that cannot
        controls[UPDATES_OFF] = loss(model, tokens, state=start_state, ablation=ablation.replace(test_time_updates=False))
    if baseline is not None:
        controls[BASELINE] = loss(baseline, tokens)
    if start_state is not None and start_state.position > 0:
        controls[RESET] = loss(model, tokens, ablation=ablation)
    _, other_state = guarded_record(model, OTHER_DOCUMENT, ablation=ablation)
    controls[OTHER] = loss(model, tokens, state=other_state, ablation=ablation)
    return controls


GAIN_ROWS = 20  # tokens listed in the gains table
GAIN_CONTEXT = 16  # bytes of text shown before a listed token


def token_gains(tokens: list[int], own: np.ndarray, control: np.ndarray, rows: int = GAIN_ROWS) -> pd.DataFrame:
    """The tokens whose loss this run lowered most against ``control`` (the same run with test-time updates
    off), largest first: where the memory's writes paid off. ``loss[t]`` is the cost of predicting byte
    t + 1, so a row names the byte predicted and the text read before it."""
    gain = control - own
    finite = np.flatnonzero(np.isfinite(gain))
    order = finite[np.argsort(-gain[finite], kind="stable")][:rows]
    data = bytes(tokens)
    out = [{"token": int(t), "text before": data[max(0, t + 1 - GAIN_CONTEXT):t + 1].decode("utf-8", errors="replace"),
            "byte predicted": data[t + 1:t + 2].decode("utf-8", errors="replace"),
            "loss, this run": float(own[t]), "loss, updates off": float(control[t]), "lowered by": float(gain[t])}
           for t in order]
    return pd.DataFrame(out, columns=["token", "text before", "byte predicted", "loss, this run", "loss, updates off",
                                      "lowered by"])


def run_verdict(model: HopeTransformer, recording: Recording, start_state: HopeState | None,
                baseline: HopeTransformer | None = None) -> Verdict:
    """Compare a run (``recording``, read from ``start_state``) with its controls on the same tokens."""
    own = recording.stream("loss").double().numpy()
    repeats = find_repeats(recording.tokens.tolist())
    on_repeats = repeat_mask(len(own), repeats) if repeats else None
    controls = control_losses(model, recording, start_state, baseline)
    estimates = {}
    for name, loss in controls.items():
        estimates[name, "run"] = block_difference(own, loss)
        if on_repeats is not None:
            estimates[name, "repeats"] = block_difference(own, loss, on_repeats)
    sentences = [_sentence(name, estimates[name, "run"], estimates.get((name, "repeats"))) for name in controls]
    table = _table({THIS_RUN: own, **controls}, on_repeats, estimates)
    gains = (token_gains(recording.tokens.tolist(), own, controls[UPDATES_OFF]) if UPDATES_OFF in controls
             else pd.DataFrame())
    return Verdict(_headline(estimates, repeats), sentences, table, estimates, gains)


def _interval(estimate: Estimate | None) -> str:
    return "" if estimate is None else f"{estimate.mean:+.3f} [{estimate.ci_low:+.3f}, {estimate.ci_high:+.3f}]"


def _table(losses: dict[str, np.ndarray], on_repeats: np.ndarray | None,
           estimates: dict[tuple[str, str], Estimate]) -> pd.DataFrame:
    rows = []
    for name, loss in losses.items():
        rows.append({"condition": name, "a lower loss rules out": RULES_OUT.get(name, "").split(" (")[0],
                     "mean loss (nats/byte)": float(np.nanmean(loss)),
                     "loss on repeats": float(np.nanmean(loss[on_repeats])) if on_repeats is not None else np.nan,
                     "run minus control": _interval(estimates.get((name, "run"))),
                     "run minus control, on repeats": _interval(estimates.get((name, "repeats")))})
    return pd.DataFrame(rows)


def _say(estimate: Estimate, where: str) -> str:
    interval = f"[{abs(estimate.ci_high):.3f}, {abs(estimate.ci_low):.3f}]" if estimate.below(0) else \
        f"[{estimate.ci_low:.3f}, {estimate.ci_high:.3f}]"
    if estimate.below(0):
        return f"{-estimate.mean:.3f} nats/byte lower {where} {interval}"
    if estimate.above(0):
        return f"{estimate.mean:.3f} nats/byte higher {where} {interval}: it hurt"
    return f"no clear difference {where} ({_interval(estimate)})"


def _sentence(name: str, overall: Estimate, repeat: Estimate | None) -> tuple[bool, str]:
    parts = [_say(overall, "over the run")] + ([_say(repeat, "on the repeated words and sentences")] if repeat else [])
    better = overall.below(0) or (repeat is not None and repeat.below(0))
    return better, f"Against {name} ({WHAT[name]}): " + "; ".join(parts) + f". Lower rules out {RULES_OUT[name]}."


def _headline(estimates: dict[tuple[str, str], Estimate], repeats: list[Repeat]) -> tuple[bool, str]:
    """The answer from the first control that cannot learn within the run, on the repeats when there are any."""
    control = next((name for name in CANNOT_LEARN if (name, "run") in estimates), None)
    if control is None:
        return False, ("No control here can tell what the memory learned during the run (this model has no "
                       "test-time updates to switch off and no baseline is shipped).")
    where = "repeats" if repeats else "run"
    estimate = estimates[control, where]
    span = (f"on the {len(repeats)} repeated span{'s' if len(repeats) > 1 else ''} (words and sentences of "
            f"{MIN_REPEAT}+ bytes this run had read before)" if repeats else
            f"over the run (it repeats no words or sentences of {MIN_REPEAT}+ bytes)")
    if estimate.below(0):
        return True, (f"Test-time learning helped: {span} the loss is {-estimate.mean:.3f} nats/byte lower than "
                      f"with {control} [{-estimate.ci_high:.3f}, {-estimate.ci_low:.3f}].")
    if estimate.above(0):
        return False, (f"Test-time learning hurt: {span} the loss is {estimate.mean:.3f} nats/byte higher than "
                       f"with {control} [{estimate.ci_low:.3f}, {estimate.ci_high:.3f}].")
    return False, f"No clear sign that test-time learning helped {span}: against {control}, {_interval(estimate)}."
