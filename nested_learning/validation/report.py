"""The suite's results as a JSON document (for the dashboard) and as a markdown report (for people)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .stats import Result

FORMAT = "nested_learning.validation"
FORMAT_VERSION = 2  # 2: properties judged against swap/reset/baseline controls; reported-only results
MAX_TABLE_ROWS = 40  # longer tables (e.g. per-call write events) are left to the JSON file


def to_document(results: list[Result], meta: dict) -> dict:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta,
            "passed": sum(r.passed for r in results if r.judged), "failed": sum(not r.passed for r in results if r.judged),
            "reported": sum(not r.judged for r in results),
            "results": [r.to_dict() for r in results]}


def write_json(path: str | os.PathLike, results: list[Result], meta: dict) -> Path:
    path = Path(path)
    path.write_text(json.dumps(to_document(results, meta), indent=1, allow_nan=False) + "\n")
    return path


def read_json(path: str | os.PathLike) -> tuple[dict, list[Result]]:
    """(meta, results) from a file written by :func:`write_json`; a wrong file raises ValueError, one line."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path.name}: not a readable validation JSON file ({type(e).__name__})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{path.name}: not a validation results file")
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path.name}: validation format version {document.get('format_version')!r}, "
                         f"this code reads {FORMAT_VERSION}")
    return document["meta"], [Result.from_dict(r) for r in document["results"]]


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: list[dict]) -> list[str]:
    if len(rows) > MAX_TABLE_ROWS:
        return [f"{len(rows)} rows: in the JSON file."]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_number(row.get(c)) for c in columns) + " |" for row in rows]


def _model_line(meta: dict) -> str:
    c = meta.get("config", {})
    window = c.get("attention_window") or "full"
    parts = [f"{c.get('n_layers')} layers", f"d_model {c.get('d_model')}", f"{c.get('n_heads')} heads",
             f"attention {'on (window ' + str(window) + ')' if c.get('attention') else 'off'}",
             f"memory {'self-modifying' if c.get('self_modifying') else 'static projections'}" if c.get("memory") else "no memory",
             f"momentum {'on' if c.get('momentum') else 'off'}", f"CMS periods {c.get('cms_periods')}",
             f"{meta.get('parameters', 0):,} parameters"]
    return ", ".join(parts)


def _load_note(meta: dict) -> str:
    """The 1-minute load averages, and whether other work shared the machine: the load before the
    suite started is other processes' (at the end it includes the suite's own threads)."""
    start, end = meta.get("load_average_1min_start"), meta.get("load_average_1min")
    note = f"1-minute load average {_number(start)} at the start, {_number(end)} at the end"
    if start is not None and start >= 1.0:
        note += ": other processes were running before the suite started, so the time is longer than on an idle machine"
    return note


def markdown(results: list[Result], meta: dict) -> str:
    judged = [r for r in results if r.judged]
    passed = sum(r.passed for r in judged)
    lines = [f"# Validation report: {meta.get('source', 'model')}", ""]
    lines += [f"Command: `{meta['command']}`" if meta.get("command") else "",
              f"Finished {meta.get('finished')}; settings **{meta.get('settings')}**, seed {meta.get('seed')}; "
              f"wall time **{meta.get('wall_time_s', 0):.1f} s** on {meta.get('cpus')} CPUs with {meta.get('threads')} "
              f"torch thread{'' if meta.get('threads') == 1 else 's'} ({_load_note(meta)}); "
              f"torch {meta.get('torch')}, device {meta.get('device')}.", "",
              f"Model: {_model_line(meta)}.",
              f"Attention window {_number(meta.get('attention_window')) if meta.get('attention_window') else 'full'}; "
              f"reach without the memories {_number(meta.get('reach')) if meta.get('reach') is not None else 'unbounded'} "
              "tokens (layers x (window - 1 + conv - 1 + 1 with shifted keys)); distances are in tokens."]
    if meta.get("baseline"):
        lines.append(f"Baseline: `{meta['baseline']}` (same rows, paired).")
    if meta.get("rules_commit"):
        lines.append(f"Pass rules of properties 2-7: docs/validation.md as of commit {meta['rules_commit']} "
                     "(git log docs/validation.md says which came before the checkpoint).")
    checkpoint = meta.get("checkpoint_metadata")
    if checkpoint:
        shown = [f"{key} {checkpoint[key]}" for key in ("status", "step", "tokens") if key in checkpoint]
        lines.append("Checkpoint: " + ", ".join(shown) + (f"; data: {checkpoint['data_note']}" if checkpoint.get("data_note") else "") + ".")
        training_eval = checkpoint.get("eval", {})
        on, off = (training_eval.get(k, {}).get("heldout_bpb") for k in ("updates_on", "updates_off"))
        if on is not None and off is not None:  # prose the suite does not have: a cross-reference, not a result
            lines.append(f"The training run's own evaluation on its held-out prose: {on:.3f} bits/byte with "
                         f"test-time updates on, {off:.3f} with them off.")
    if meta.get("label"):
        lines += ["", f"> {meta['label']}"]
    lines += ["", f"**{passed} of {len(judged)} properties hold** under their stated pass rules"
              + (f" ({len(results) - len(judged)} reported, not judged)." if len(judged) < len(results) else "."), "",
              "| property | result | checks | sequences | runtime |", "|---|---|---|---|---|"]
    for r in results:
        failed = [name for name, ok in r.checks.items() if not ok]
        lines.append(f"| {r.title} | **{r.verdict}** | "
                     f"{len(r.checks) - len(failed)}/{len(r.checks)}{' (failed: ' + ', '.join(failed) + ')' if failed else ''} | "
                     f"{r.n_sequences} | {r.runtime_s:.1f} s |")
    for r in results:
        lines += ["", f"## {r.title}: {r.verdict}", "", f"**Claim.** {r.claim}", "",
                  f"**Pass rule.** {r.pass_rule}", "",
                  "**Checks.** " + "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in r.checks.items()) + ".",
                  "", "Seeds: " + ", ".join(f"{k} {v}" for k, v in r.seeds.items()) + f"; {r.n_sequences} sequences; {r.runtime_s:.1f} s.", "",
                  "| metric | mean | 95% CI | n |", "|---|---|---|---|"]
        for name, e in r.metrics.items():
            lines.append(f"| {name} | {_number(e.mean)} | [{_number(e.ci_low)}, {_number(e.ci_high)}] | {e.n} |")
        for table_name, rows in r.tables.items():
            if rows:
                lines += ["", f"*{table_name}*", ""] + _table(rows)
        for note in r.notes:
            lines += ["", f"Note: {note}"]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def write_markdown(path: str | os.PathLike, results: list[Result], meta: dict) -> Path:
    path = Path(path)
    path.write_text(markdown(results, meta))
    return path
