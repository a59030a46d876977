"""The validation suite's results (:mod:`nested_learning.validation`) as tables for the Validate page,
and the saved report that goes with the shipped checkpoint."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from ..validation import EXPERIMENTS, Result, read_json
from .models import ROOT

MAX_ROWS = 500  # a table longer than this is cut (the JSON file has it all)


def report_file(checkpoint: Path) -> Path:
    """Where ``python -m nested_learning validate --json`` results for a shipped checkpoint live."""
    return ROOT / "reports" / f"validation-{Path(checkpoint).stem}.json"


def saved_report(checkpoint: Path) -> tuple[dict, list[Result]] | None:
    """(meta, results) of the checkpoint's saved report; None when there is none or it cannot be read."""
    path = report_file(checkpoint)
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ValueError:
        return None


def result_label(result: Result, quick: bool) -> str:
    """PASS / FAIL / REPORTED; a quick (smoke-test) run's pass rules are only indicative, and say so."""
    return f"{result.verdict} (smoke test)" if quick and result.judged else result.verdict


def headline(results: list[Result], quick: bool) -> str:
    """The one-line outcome: a full run's properties that hold, or what a quick run can and cannot say."""
    judged = [r for r in results if r.judged]
    met = sum(r.passed for r in judged)
    if not quick:
        return f"**{met} of {len(judged)} properties hold** under their pass rules (full settings)."
    sizes = sorted({r.n_sequences for r in results})
    counts = f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else f"{sizes[0]}" if sizes else "0"
    return (f"**Smoke test: every experiment ran; {met} of {len(judged)} pass rules were met on {counts} sequences "
            "each.** That is indicative only, far too few to show a property holds: run full settings for that.")


def summary_frame(results: list[Result], quick: bool = False) -> pd.DataFrame:
    """One row per property: verdict (marked as a smoke test for a quick run), checks that hold, the failed
    ones, sequences, runtime."""
    rows = []
    for r in results:
        failed = [name for name, ok in r.checks.items() if not ok]
        rows.append({"property": r.title, "result": result_label(r, quick),
                     "checks": f"{len(r.checks) - len(failed)}/{len(r.checks)}", "failed checks": ", ".join(failed),
                     "sequences": r.n_sequences, "seconds": round(r.runtime_s, 1)})
    return pd.DataFrame(rows)


def metrics_frame(result: Result) -> pd.DataFrame:
    """Each metric with its mean and 95% bootstrap interval."""
    return pd.DataFrame([{"metric": name, "mean": e.mean, "95% CI low": e.ci_low, "95% CI high": e.ci_high, "n": e.n}
                         for name, e in result.metrics.items()])


def checks_frame(result: Result) -> pd.DataFrame:
    return pd.DataFrame({"check": list(result.checks), "holds": list(result.checks.values())})


def table_frames(result: Result) -> dict[str, pd.DataFrame]:
    """The result's per-condition tables, at most MAX_ROWS rows each."""
    return {name: pd.DataFrame(rows[:MAX_ROWS]) for name, rows in result.tables.items() if rows}


def experiment_names() -> list[str]:
    return list(EXPERIMENTS)


# Curves worth drawing: (table, x column, [(y column, axis title)]), one line per condition with its interval.
CURVES = {
    "ratio_by_gap": ("gap", [("ratio", "second / first reading loss")]),
    "by_distance": ("distance", [("passkey_accuracy", "pass-key accuracy"), ("copy_nats_per_letter", "copy loss (nats/letter)")]),
    "accuracy_by_condition": ("pair_distance", [("accuracy", "answer-digit accuracy")]),
    "loss_by_position": ("last", [("loss", "loss (nats/byte)")]),
}


def curve_figures(result: Result) -> list[go.Figure]:
    """The result's curves against gap, distance or position, one line per condition (the controls and
    the baseline beside the model) with 95% intervals as error bars; empty when it has none."""
    figures = []
    for name, rows in result.tables.items():
        if name not in CURVES or not rows:
            continue
        x, ys = CURVES[name]
        frame = pd.DataFrame(rows)
        if name == "loss_by_position":  # two columns, not a condition column: one line each
            frame = pd.concat([frame.assign(condition="model"), frame.assign(
                condition="baseline", loss=frame.get("baseline_loss"), loss_ci_low=frame.get("baseline_loss_ci_low"),
                loss_ci_high=frame.get("baseline_loss_ci_high"))]) if "baseline_loss" in frame else frame.assign(condition="model")
        for column, title in ys:
            if column not in frame or x not in frame:
                continue
            fig = go.Figure()
            for condition, part in frame.groupby("condition", sort=False):
                part = part.sort_values(x)
                error = None
                if f"{column}_ci_high" in part:
                    error = dict(type="data", array=part[f"{column}_ci_high"] - part[column],
                                 arrayminus=part[column] - part[f"{column}_ci_low"])
                fig.add_trace(go.Scatter(x=part[x], y=part[column], name=str(condition), mode="lines+markers", error_y=error))
            fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=40), title=f"{result.title}: {title}",
                              xaxis_title="tokens (last position of the bin)" if name == "loss_by_position" else f"{x} (tokens)",
                              yaxis_title=title, xaxis_type="log" if name in ("by_distance", "loss_by_position") else None)
            figures.append(fig)
    return figures
