"""The validation suite's results (:mod:`nested_learning.validation`) as tables for the Validate page,
and the saved report that goes with the shipped checkpoint."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

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


def summary_frame(results: list[Result]) -> pd.DataFrame:
    """One row per property: verdict, checks that hold, the failed ones, sequences, runtime."""
    rows = []
    for r in results:
        failed = [name for name, ok in r.checks.items() if not ok]
        rows.append({"property": r.title, "result": r.verdict,
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
