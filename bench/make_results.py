"""Write every quoted result from the reports: the generated blocks of docs/results.md and README.md.

    python bench/make_results.py           # rewrite the blocks from reports/*.json
    python bench/make_results.py --check   # exit 1, naming the stale blocks, when a file is out of date

A block is the text between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` in README.md or a
docs/*.md file; BLOCKS says how each is rendered from which report. Numbers about results live only in
these blocks (tests/test_results_doc.py holds README to that), so a new report changes every place that
quotes it, and nothing else can quote an older one. Text outside the blocks is written by hand.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nested_learning.viz import alike  # noqa: E402

REPORTS = {
    "targets": "reports/model-targets.json",  # bench/model_targets.py on the shipped checkpoint
    "validation": "reports/validation-hope-default.json",  # python -m nested_learning validate on it
    "balanced": "reports/model-targets-cpu-balanced.json",  # bench/model_targets.py on the cpu-balanced run (not shipped)
    "wordings": "reports/model-targets-wordings.json",  # bench/model_targets.py --only wordings,gating (issue 27)
    "phrasings": "reports/model-targets-phrasings.json",  # the cpu-phrasings run (issue 27, not shipped)
    "variants": "reports/reread-variants.json",  # bench/model_targets.py --only variants (issue 27)
    "recording": "reports/recording-budget.json",  # bench/bench_recording.py --budget-report (issue 26)
    "bindings": "reports/model-targets-bindings.json",  # bench/model_targets.py --only bindings (issue 27)
    "reach": "reports/model-targets-reach.json",  # bench/model_targets.py --only reach (issue 27)
    "copy_far": "reports/model-targets-copy-far.json",  # bench/model_targets.py --only copy_far (issue 27)
    "frames": "reports/model-targets-frames.json",  # bench/model_targets.py --only frames (issue 27)
    "fast_targets": "reports/model-targets-hope-fast-cms.json",  # the default until 2026-12-06 (CMS periods 1-8)
    "fast_wordings": "reports/model-targets-hope-fast-cms-wordings.json",  # its --only wordings,gating
    "reach_fast": "reports/model-targets-hope-fast-cms-reach.json",  # --only reach on the earlier default (CMS periods 1-8)
    "reach_lm": "reports/model-targets-hope-lm-reach.json",  # --only reach on the lm objective at 16-1,024 (issue 31)
    "gating_lm": "reports/model-targets-hope-lm-gating.json",  # --only gating on the lm objective (issue 31)
    "gating_deep": "reports/model-targets-hope-deep-gating.json",  # --only gating on the 2-layer memory (issue 31)
}
BLOCK = re.compile(r"(<!-- results:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def load_reports(root: Path = ROOT) -> dict[str, dict]:
    reports = {name: json.loads((root / path).read_text()) for name, path in REPORTS.items()}
    # Other models trained by the shipped model's recipe, measured at every distance: the registry the
    # Validate page draws from (nested_learning/viz/alike.py).
    # The same objects where a file is also one of REPORTS: a changed report changes every block quoting it.
    by_path = {path: reports[name] for name, path in REPORTS.items()}
    reports["alike"] = {model.key: [(path, by_path.get(path, report)) for path, report in alike.load_reports(model, root)]
                        for model in alike.ALIKE}
    return reports


# --- formatting ------------------------------------------------------------------------------------------

def est(stat: dict, digits: int = 3) -> str:
    """mean [95% interval]"""
    return f"{stat['mean']:.{digits}f} [{stat['ci_low']:.{digits}f}, {stat['ci_high']:.{digits}f}]"


def pct(stat: dict) -> str:
    return f"{100 * stat['mean']:.1f}% [{100 * stat['ci_low']:.1f}, {100 * stat['ci_high']:.1f}]"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def by(rows: list[dict], key: str) -> dict:
    return {row[key]: row for row in rows}


def source(path: str, report: dict) -> str:
    return f"`{path}` (`{report['checkpoint']}`, {report['n']} sequences per measurement, 95% bootstrap intervals)"


# --- the shipped checkpoint's targets (reports/model-targets.json) ----------------------------------------

def with_control(measured: list[str], control: str, values: list[float], digits: int) -> str:
    """The measurements, then the control's range: "a; b; <control> lo-hi"."""
    return "; ".join(measured) + f"; {control} {min(values):.{digits}f}-{max(values):.{digits}f}"


def target_rows(t: dict) -> list[list[str]]:
    """One row per target: what it asks, what was measured, whether the mean meets it."""
    model, baseline = t["bits_per_byte"][0]["model"], next(iter(t["bits_per_byte"][1].values()))
    gating = t["gating"][0]
    copies, rereads = t["copy"], t["reread"]
    recall = [r for r in t["recall"] if r["spread"] > 0]  # pairs spread beyond the attention window
    passkey = by(t["passkey"], "distance")
    phrase = t["phrase"][0]
    streams = t["streaming"]
    return [
        ["held-out prose bits per byte below the same-window transformer's",
         f"{est(model)} against {est(baseline)}", yes(model["mean"] < baseline["mean"])],
        [f"memory bounded: {streams[0]['tokens']:,} tokens of each input streamed, outputs finite",
         "largest fast-weight norm: " + ", ".join(f"{s['input'].replace('_', ' ')} {max(s['max_norm'].values()):.0f}"
                                                   for s in streams), yes(all(s["finite"] for s in streams))],
        ["learning rate lower on a passage's second reading; under 1% of rates pinned at a bound",
         "; ".join(f"layer {g['layer']}: {g['first']['mean']:.3f} -> {g['second']['mean']:.3f}, "
                   f"difference {est(g['second_minus_first'])}, {100 * g['pinned_share']['mean']:.2f}% pinned"
                   for g in gating),
         yes(all(g["second_minus_first"]["ci_high"] < 0 and g["pinned_share"]["mean"] < 0.01 for g in gating))],
        ["\"Repeated phrase\" preset: loss falls copy by copy, last copy at most 0.3 nats/byte",
         ", ".join(f"{x:.2f}" for x in phrase), yes(all(b < a for a, b in zip(phrase, phrase[1:])) and phrase[-1] <= 0.3)],
        ["a 32-letter random string copied 100-1,000 tokens later at most 0.5 nats/letter; without the first "
         "reading at least 2.5",
         with_control([f"{est(c['own'])} at {c['gap']:,} tokens" for c in copies], "without the first reading",
                      [c["no_first_reading"]["mean"] for c in copies], 2),
         yes(all(c["own"]["mean"] <= 0.5 and c["no_first_reading"]["mean"] >= 2.5 for c in copies))],
        ["a 128-byte passage reread 100-1,000 tokens later: second/first at most 0.5; with another document's "
         "memory at least 0.9",
         with_control([f"{est(r['ratio_own'])} at {r['gap']:,}" for r in rereads], "another document's memory",
                      [r["ratio_swap"]["mean"] for r in rereads], 3),
         yes(all(r["ratio_own"]["mean"] <= 0.5 and r["ratio_swap"]["mean"] >= 0.9 for r in rereads))],
        ["associative recall, 16 pairs spread beyond the window, at least 80%",
         "; ".join(f"{pct(r['own'])} with pairs {r['pair_distance']} tokens apart (another document's memory "
                   f"{100 * r['swap']['mean']:.1f}%)" for r in recall) + f"; chance {100 * recall[0]['chance']:.0f}%",
         yes(all(r["own"]["mean"] >= 0.8 for r in recall))],
        ["pass key found 1,000 tokens later at least 90%",
         "; ".join(f"{pct(p['own'])} at {p['token_distance']:,} tokens" for p in t["passkey"])
         + f"; another document's memory at most {100 * max(p['swap']['mean'] for p in t['passkey']):.1f}%",
         yes(passkey[1000]["own"]["mean"] >= 0.9)],
    ]


def block_targets(r: dict) -> str:
    t = r["targets"]
    return (f"Measured by `python bench/model_targets.py` on {source(REPORTS['targets'], t)}; "
            f"held-out prose of the offline corpus ({t['heldout_bytes']:,} bytes no training step saw). "
            "*Met* judges the mean.\n\n" + table(["target", "measured", "met"], target_rows(t)))


def block_memory(r: dict) -> str:
    """What wears a reread away, what each component is worth, and every distance measured."""
    t = r["targets"]
    between = [[row["filler"].replace("_", " "), f"{row['gap']:,}", est(row["ratio_own"])] for row in t.get("reread_between", [])]
    rereads = [[f"{row['gap']:,}", est(row["ratio_own"]), est(row["ratio_swap"]), est(row["ratio_reset"])] for row in t["reread"]]
    copies = [[f"{row['gap']:,}", est(row["own"]), est(row["swap"], 2), est(row["no_first_reading"], 2)] for row in t["copy"]]
    keys = [[f"{row['token_distance']:,}", pct(row["own"]), pct(row["swap"]), est(row["loss_own"])] for row in t["passkey"]]
    recall = [[f"{row['pair_distance']}", pct(row["own"]), pct(row["swap"]), pct(row["reset"])] for row in t["recall"]]
    rereads_off = by(t["ablation_reread"], "ablation")
    copies_off = by(t["ablation_copy"], "ablation")
    full_reread = by(t["reread"], "gap")[500]["ratio_own"]
    full_copy = by(t["copy"], "gap")[503]["own"]
    ablations = [["full model", est(full_reread), est(full_copy)]] + [
        [name.replace("_", " "), est(rereads_off[name]["ratio_own"]), est(copies_off[name]["own"])] for name in rereads_off]
    parts = [
        "A passage reread later, second/first loss (own memory; another document's; the learned initial one):",
        table(["tokens between", "own", "another document's", "initial"], rereads),
        "The same passages with other text between the readings (`reread_between`):",
        table(["between the readings", "tokens", "second/first"], between) if between else "(not measured in this report)",
        "A 32-letter random string copied later, nats per letter:",
        table(["tokens between", "own", "another document's memory", "without the first reading"], copies),
        "Pass key (whole key right) and its loss per digit:",
        table(["tokens back", "own", "another document's memory", "loss, nats/digit"], keys),
        "Recall of 16 digit pairs (chance 10%):",
        table(["tokens between pairs", "own", "another document's memory", "initial memory"], recall),
        "Components switched off: passage reread 500 tokens later (second/first) and a copy 503 tokens later "
        "(nats/letter):",
        table(["model", "reread", "copy"], ablations),
    ]
    return "\n\n".join(parts)


# --- the validation suite (reports/validation-hope-default.json) ------------------------------------------

def metric(result: dict, name: str, digits: int = 3) -> str:
    return est(result["metrics"][name], digits)


def validation_numbers(res: dict) -> str:
    """The numbers behind each experiment's verdict (the whole report: reports/validation-hope-default.md)."""
    name = res["name"]
    if name == "memory_updates":
        return ", ".join(f"{check.replace('_', ' ')}: {yes(ok)}" for check, ok in res["checks"].items())
    if name == "repetition_learning":
        gaps = {(row["gap"], row["condition"]): row for row in res["tables"]["ratio_by_gap"]}
        first, last = min(g for g, _ in gaps), max(g for g, _ in gaps)
        return (f"second/first {metric(res, 'ratio_own')} pooled ({gaps[first, 'own']['ratio']:.3f} at {first:,} tokens, "
                f"{gaps[last, 'own']['ratio']:.3f} at {last:,}); another document's memory {metric(res, 'ratio_swap')}; "
                f"own minus swap {metric(res, 'second_reading_own_minus_swap')} nats/byte; "
                f"baseline {metric(res, 'ratio_baseline')}")
    if name == "in_context_association":
        row = next(r for r in res["tables"]["accuracy_by_condition"] if r["condition"] == "own" and r["spread"] > 0)
        return (f"16 pairs {row['pair_distance']} tokens apart: accuracy {metric(res, 'accuracy_own')}, chance 0.1; "
                f"own minus swap {metric(res, 'accuracy_own_minus_swap')}; full model minus baseline "
                f"{metric(res, 'accuracy_full_minus_baseline')}")
    if name == "memory_ablation":
        rows = [r for r in res["tables"]["ablation"] if r["table"] == "prose"]
        return "prose reread, loss change in nats/byte: " + "; ".join(
            f"{r['row']} {r['loss_change']:+.2f} [{r['loss_change_ci_low']:+.2f}, {r['loss_change_ci_high']:+.2f}]" for r in rows)
    if name == "long_range_persistence":
        own = [r for r in res["tables"]["by_distance"] if r["condition"] == "own"]
        return (f"pass key own minus swap {metric(res, 'passkey_accuracy_own_minus_swap', 2)} pooled: "
                + ", ".join(f"{100 * r['passkey_accuracy']:.0f}% at {r['token_distance']:,}" for r in own)
                + f"; copy loss own minus swap {metric(res, 'copy_loss_own_minus_swap', 2)} nats/letter: "
                + ", ".join(f"{r['copy_nats_per_letter']:.2f} at {r['token_distance']:,}" for r in own))
    if name == "surprise_gating":  # a reread against the same passage read new at the same position
        interval = lambda row, key: f"{row[key]:.3f} [{row[key + '_ci_low']:.3f}, {row[key + '_ci_high']:.3f}]"
        return "; ".join(f"layer {row['layer']}, {row['gap']:,} tokens: rate {row['rate_reread']:.3f} on a reread, "
                         f"{row['rate_new']:.3f} new at the same position, reread minus new "
                         f"{interval(row, 'reread_minus_new')}, {100 * row['pinned_share']:.2f}% pinned"
                         for row in res["tables"]["rate_by_layer"])
    if name == "loss_by_position":
        return "Hope minus baseline, nats/byte: " + ", ".join(
            f"{row['model_minus_baseline']:+.2f} (positions {row['positions']})" for row in res["tables"]["loss_by_position"])
    if name == "module_exactness":
        return "; ".join(f"{row['case']}: {row['relative_error']:.1e}" for row in res["tables"]["recall_error"])
    return ", ".join(f"{key} {est(value)}" for key, value in res["metrics"].items())


def verdict(res: dict) -> str:
    if not res["checks"]:
        return "reported"
    return "PASS" if res["passed"] else "FAIL"


def block_validation(r: dict) -> str:
    v = r["validation"]
    assert v["format"] == "nested_learning.validation", "not a validation report"
    meta = v["meta"]
    rows = [[res["title"] if "title" in res else res["name"], verdict(res), validation_numbers(res)] for res in v["results"]]
    return (f"`python -m nested_learning validate` on `{meta['source'].removeprefix('checkpoint ')}` "
            f"(`{REPORTS['validation']}`; rules committed in {meta['rules_commit']}, window {meta['attention_window']}, "
            f"local reach {meta['reach']} tokens): **{v['passed']} of {v['passed'] + v['failed']} judged results hold**, "
            f"{v['reported']} reported.\n\n" + table(["experiment", "result", "the numbers (mean [95% interval])"], rows))


# --- the cpu-balanced run (not shipped) ------------------------------------------------------------------

def block_balanced(r: dict) -> str:
    b = r["balanced"]
    (_, model), *baselines = [next(iter(x.items())) for x in b["bits_per_byte"]]
    rereads = by(b["reread"], "gap")
    recall = by(b["recall"], "pair_distance")
    rows = [
        ["held-out prose, bits per byte", est(model) + "; " + "; ".join(f"`{Path(p).name}` {est(s)}" for p, s in baselines)],
        ["32 letters copied 103 / 253 / 503 / 1,003 tokens later, nats/letter",
         " / ".join(f"{c['own']['mean']:.2f}" for c in b["copy"])
         + f"; without the first reading {min(c['no_first_reading']['mean'] for c in b['copy']):.1f}-"
           f"{max(c['no_first_reading']['mean'] for c in b['copy']):.1f}"],
        ["passage reread 100 / 1,000 tokens later, second/first (another document's memory)",
         f"{rereads[100]['ratio_own']['mean']:.3f} / {rereads[1000]['ratio_own']['mean']:.3f} "
         f"({rereads[100]['ratio_swap']['mean']:.3f} / {rereads[1000]['ratio_swap']['mean']:.3f})"],
        ["\"Repeated phrase\", first and last of 8 copies, nats/byte", f"{b['phrase'][0][0]:.2f} -> {b['phrase'][0][-1]:.2f}"],
        ["recall, 16 pairs 38 tokens apart / pass key at 1,054 tokens",
         f"{100 * recall[38]['own']['mean']:.1f}% / {100 * by(b['passkey'], 'distance')[1000]['own']['mean']:.1f}%"],
        ["learning rate on a reread, first -> second reading",
         "; ".join(f"layer {g['layer']} {g['first']['mean']:.3f} -> {g['second']['mean']:.3f} "
                   f"({100 * g['pinned_share']['mean']:.0f}% pinned)" for g in b["gating"][0])],
    ]
    return f"{source(REPORTS['balanced'], b)}:\n\n" + table(["measure", "cpu-balanced"], rows)


# --- issue 27: held-out wordings, and the learning rate against a new passage at the same position -------

WORDING_TASKS = {"passkey": ("pass key 1,000 bytes back (whole key right)", pct),
                 "repeat": ("32-letter copy 100 bytes back (nats/letter)", est),
                 "recall": ("recall of 16 pairs spread 48 bytes (digit accuracy)", pct)}


def block_wordings(r: dict) -> str:
    w = r["wordings"]
    rows = {(row["task"], row["wordings"]): row for row in w["wordings"]}
    templates = {split: rows["passkey", split]["templates"] for split in ("original", "trained", "heldout")}
    cell = lambda row, fmt: f"{fmt(row['own'])} (swap {fmt(row['swap'])})"
    body = [[label] + [cell(rows[task, split], fmt) for split in ("original", "trained", "heldout")]
            for task, (label, fmt) in WORDING_TASKS.items()]
    far = {row["wordings"]: row for row in r["copy_far"]["wordings_far"]}  # the copy target's far end
    body.insert(2, ["32-letter copy 1,000 bytes back (nats/letter)"]
                + [cell(far[split], est) for split in ("original", "trained", "heldout")])
    return (f"{source(REPORTS['wordings'], w)} and `{REPORTS['copy_far']}` (the copy 1,000 bytes back); own memory, "
            "and another document's (swap):\n\n"
            + table(["task", "original wording", f"{templates['trained']} of the trained wordings",
                     f"{templates['heldout']} held-out wordings"], body))


def block_gating(r: dict) -> str:
    w = r["wordings"]
    rows = [[f"{g['layer']}", f"{g['gap']:,}", f"{g['first']['mean']:.3f}", f"{g['second']['mean']:.3f}",
             f"{g['new_at_same_position']['mean']:.3f}", est(g["reread_minus_new"]), est(g["second_minus_first"])]
            for layer_rows in w["gating"] for g in layer_rows]
    return (f"{source(REPORTS['wordings'], w)}: the memory's learning rate on a passage read a second time, "
            "against the same passage read new at the same stream position:\n\n"
            + table(["layer", "tokens between", "first reading", "second reading", "new at the same position",
                     "second minus new", "second minus first"], rows))


def heldout_target_rows(r: dict) -> list[list[str]]:
    """Issue 27's targets on the shipped checkpoint (held-out wordings unless a row says so): target,
    measured, met (the mean judged, as in the earlier targets)."""
    w = {(row["task"], row["wordings"]): row for row in r["wordings"]["wordings"]}
    far = {row["wordings"]: row for row in r["copy_far"]["wordings_far"]}
    keys = by(r["targets"]["passkey"], "distance")
    gating = [g for layer_rows in r["wordings"]["gating"] for g in layer_rows]
    copies = [w["repeat", "heldout"]["own"], far["heldout"]["own"]]
    rows = [["pass key 1,000 bytes back at least 80%", pct(w["passkey", "heldout"]["own"]),
             yes(w["passkey", "heldout"]["own"]["mean"] >= 0.8)],
            ["pass key 4,000 bytes back at least 60% (the original wording, one of the trained)", pct(keys[4000]["own"]),
             yes(keys[4000]["own"]["mean"] >= 0.6)],
            ["32-letter copy 100-1,000 bytes back at most 0.5 nats a letter, first letter included",
             " and ".join(est(c) for c in copies), yes(all(c["mean"] <= 0.5 for c in copies))],
            ["recall of 16 pairs at least 80%", pct(w["recall", "heldout"]["own"]), yes(w["recall", "heldout"]["own"]["mean"] >= 0.8)],
            ["learning rate on a reread below the same passage new at the same position, interval excluding 0, "
             "in every layer", "; ".join(f"layer {g['layer']}, {g['gap']:,} tokens: {est(g['reread_minus_new'])}" for g in gating),
             yes(all(g["reread_minus_new"]["ci_high"] < 0 for g in gating))]]
    return rows


def block_heldout_targets(r: dict) -> str:
    return (f"Issue 27's targets, from `{REPORTS['wordings']}`, `{REPORTS['copy_far']}` and `{REPORTS['targets']}` "
            f"(`{r['wordings']['checkpoint']}`, {r['wordings']['n']} sequences per measurement, 95% bootstrap intervals); "
            "held-out wordings unless the row says otherwise; *met* judges the mean (the gating row its interval):\n\n"
            + table(["target", "measured", "met"], heldout_target_rows(r)))


def wordings_line(w: dict) -> str:
    rows = {(row["task"], row["wordings"]): row for row in w["wordings"]}
    return (f"pass key {100 * rows['passkey', 'heldout']['own']['mean']:.1f}%, copy "
            f"{rows['repeat', 'heldout']['own']['mean']:.3f} nats a letter, recall "
            f"{100 * rows['recall', 'heldout']['own']['mean']:.1f}% (`{REPORTS['wordings']}`)")


def block_phrasings(r: dict) -> str:
    """The cpu-phrasings run against the cpu recipe at the same CMS periods (1-8, the default it was trained
    beside), task by task and wording by wording."""
    shipped, phrased = r["fast_targets"], r["phrasings"]
    wordings = {name: {(x["task"], x["wordings"]): x for x in r[name]["wordings"]} for name in ("fast_wordings", "phrasings")}
    rows = [[f"{label}, {split.replace('heldout', 'held-out')} wordings", fmt(wordings["fast_wordings"][task, split]["own"]),
             fmt(wordings["phrasings"][task, split]["own"])]
            for task, (label, fmt) in WORDING_TASKS.items() for split in ("original", "trained", "heldout")]
    pair = lambda report, key, field, value: next(x for x in report[key] if x[field] == value)
    rows += [["128-byte passage reread 1,000 tokens later (second / first)",
              est(pair(shipped, "reread", "gap", 1000)["ratio_own"]), est(pair(phrased, "reread", "gap", 1000)["ratio_own"])],
             ["pass key 4,000 bytes back, original wording", pct(pair(shipped, "passkey", "distance", 4000)["own"]),
              pct(pair(phrased, "passkey", "distance", 4000)["own"])],
             ["held-out prose, bits per byte", est(shipped["bits_per_byte"][0]["model"]),
              est(phrased["bits_per_byte"][0]["model"])]]
    gating = {name: {(g["layer"], g["gap"]): g for layer_rows in r[key]["gating"] for g in layer_rows}
              for name, key in (("shipped", "fast_wordings"), ("phrased", "phrasings"))}
    rows += [[f"learning rate, reread minus new at the same position, layer {layer}, {gap} tokens",
              est(gating["shipped"][layer, gap]["reread_minus_new"]), est(gating["phrased"][layer, gap]["reread_minus_new"])]
             for layer, gap in sorted(gating["phrased"])]
    return (f"{source(REPORTS['phrasings'], phrased)} against the `cpu` recipe at the same CMS periods, 1, 2, 4, 8 "
            f"(`{REPORTS['fast_targets']}`, `{REPORTS['fast_wordings']}`):\n\n"
            + table(["measure", "`cpu`, CMS periods 1-8 (the default until 2026-12-06)", "`cpu-phrasings`"], rows))


REACH_LABELS = {"none": "full model", "retention": "retention off (nothing decays)", "cms": "every CMS level off",
                "self_modification": "self-modification off", "adaptive_lr": "adaptive learning rate off (a fixed rate)"}


REACH_MODELS = (("reach_fast", "local"), ("reach", "local"), ("reach_lm", "lm"))  # report, CMS objective


def block_reach(r: dict) -> str:
    """The pass key 4,000 bytes back with each memory component off in turn: the earlier default (CMS periods
    1-8), the shipped checkpoint and the lm-objective model (level i is the i-th period of each model's list)."""
    reports = [(name, objective, r[name]) for name, objective in REACH_MODELS]
    periods = lambda report: ", ".join(f"{p:,}" for p in report["config"]["cms_periods"])
    columns = [{x["ablation"]: x for x in report["reach"]} for _, _, report in reports]
    rows = []
    for x in reports[0][2]["reach"]:
        row = [REACH_LABELS.get(x["ablation"], f"CMS level {x['ablation'][4:]} off")]
        for found in columns:
            other = found.get(x["ablation"])
            row += [pct(other["own"]), est(other["loss_own"])] if other else ["not measured", ""]
        rows.append(row)
    header = ["model"]
    for _, objective, report in reports:
        header += [f"whole key right, CMS periods {periods(report)} ({objective})", "loss, nats/digit"]
    distance = reports[0][2]["reach"][0]["token_distance"]
    sources = ", ".join(source(REPORTS[name], report) for name, _, report in reports)
    return (f"{sources}: the pass key {distance:,} tokens back in the original wording, own memory, with one "
            "component switched off at a time:\n\n" + table(header, rows))


def block_variants(r: dict) -> str:
    v = r["variants"]
    rows = [[f"{x['gap']:,}", x["variant"], est(x["own"]), est(x["swap"]), est(x["ratio_own_swap"])]
            for x in v["reread_variants"]]
    n = v["reread_variants"][0]["own"]["n"]
    return (f"`{REPORTS['variants']}` (`{v['checkpoint']}`, {n} passages of `validation/paraphrases.py`, 95% bootstrap "
            "intervals): loss (nats/byte) of the second reading with the sequence's own memory and with another "
            "passage's at the same stream position:\n\n"
            + table(["bytes between", "second reading", "own memory", "another passage's memory", "own / another"], rows))


def block_alike(r: dict) -> str:
    """The shipped model beside the models trained by its recipe, distance by distance (own memory)."""
    models = [model for model in alike.ALIKE if r["alike"][model.key]]
    frame = alike.curves(models, loaded=r["alike"])
    rows = []
    for measure, (_, _, _, title, percent) in alike.MEASURES.items():
        part = frame[frame["measure"] == measure]
        for tokens in sorted(set(part["tokens_back"])):
            cells = []
            for model in models:
                hit = part[(part["model"] == model.key) & (part["tokens_back"] == tokens)]
                cells.append((pct if percent else est)(hit.iloc[0]) if len(hit) else "not measured")
            rows.append([f"{title}, {tokens:,} tokens back"] + cells)
    bits = lambda key, field: next((est(x[field][0]["model"]) for _, x in r["alike"][key] if x.get(field)), "not measured")
    rows.append(["held-out prose on one line, bits per byte"] + [bits(model.key, "bits_per_byte") for model in models])
    rows.append(["held-out documents with their line breaks, bits per byte"]
                + [bits(model.key, "bits_per_byte_as_written") for model in models])
    sources = ", ".join(f"`{path}` (`{report['checkpoint']}`)" for model in models for path, report in r["alike"][model.key])
    counts = sorted({report["n"] for model in models for _, report in r["alike"][model.key]})
    return (f"Each trained by the shipped model's recipe (`--recipe cpu`; `cpu-attention` where the column says so), "
            f"seed 0, one thread, and measured on the same held-out prose and tasks, "
            f"{' or '.join(map(str, counts))} sequences per measurement, 95% bootstrap intervals: {sources}.\n\n"
            + table(["measure"] + [model.label for model in models], rows))


def block_recording(r: dict) -> str:
    """A default recording's file size at the shipped and the benchmark sizes."""
    sizes = by(r["recording"]["sizes"], "size")
    line = lambda x: (f"{x['bytes_per_token'] / 1024:.1f} KiB per token plus {x['fixed_bytes'] / 2**20:.1f} MiB fixed "
                      f"(d_model {x['d_model']}, {x['n_layers']} layers, keys x {x['key_expansion']})")
    return (f"A default recording's file costs {line(sizes['shipped'])} at the shipped model's size and "
            f"{line(sizes['bench'])} at the benchmark size (`{REPORTS['recording']}`, from "
            "`python bench/bench_recording.py --budget-report`).")


# --- README's summary -------------------------------------------------------------------------------------

def block_summary(r: dict) -> str:
    t, v = r["targets"], r["validation"]
    rows, heldout = target_rows(t), heldout_target_rows(r)
    met = sum(row[2] == "yes" for row in rows)
    rereads, copies = by(t["reread"], "gap"), by(t["copy"], "gap")
    recall = [x for x in t["recall"] if x["spread"] > 0]
    keys = by(t["passkey"], "distance")
    model, baseline = t["bits_per_byte"][0]["model"], next(iter(t["bits_per_byte"][1].values()))
    lines = [
        f"- held-out prose: {model['mean']:.3f} bits per byte, the same-window transformer {baseline['mean']:.3f};",
        f"- a passage reread 100 / 1,000 tokens later costs {rereads[100]['ratio_own']['mean']:.3f} / "
        f"{rereads[1000]['ratio_own']['mean']:.3f} of its first reading ({rereads[1000]['ratio_swap']['mean']:.3f} with "
        "another document's memory);",
        f"- a random string copied 103 / 1,003 tokens later: {copies[103]['own']['mean']:.3f} / "
        f"{copies[1003]['own']['mean']:.3f} nats a letter, {copies[1003]['no_first_reading']['mean']:.2f} without its first reading;",
        "- 16 digit pairs recalled " + " and ".join(f"{100 * x['own']['mean']:.1f}%" for x in recall)
        + " (pairs " + " and ".join(str(x["pair_distance"]) for x in recall) + " tokens apart; chance 10%);",
        "- a pass key found " + ", ".join(f"{100 * keys[d]['own']['mean']:.1f}% at {keys[d]['token_distance']:,}"
                                          for d in sorted(keys)) + " tokens back;",
        "- in wordings of the tasks the training never saw: " + wordings_line(r["wordings"]) + ";",
        "- against models trained alike (the same recipe, or its `cpu-attention` variant where named), a passage "
        "reread 1,000 tokens later (second / first reading) "
        "and the pass key 1,054 tokens back: " + alike_line(r) + ";",
        f"- targets met: {met} of {len(rows)} (`{REPORTS['targets']}`); issue 27's targets: "
        f"{sum(row[2] == 'yes' for row in heldout)} of {len(heldout)}; validation suite: {v['passed']} of "
        f"{v['passed'] + v['failed']} judged results hold (`{REPORTS['validation']}`).",
    ]
    return "\n".join(lines)


def block_bindings(r: dict) -> str:
    """Recall with each binding of the pairs, nearest value first."""
    b = r["bindings"]
    sets = {"trained": "trained set", "heldout": "held-out set"}
    rows = [[f"`{x['binding']}`", sets[x["split"]], str(x["bytes_between"]), pct(x["own"]), pct(x["swap"])]
            for x in sorted(b["bindings"], key=lambda x: (x["bytes_between"], x["split"] != "trained"))]
    return (f"{source(REPORTS['bindings'], b)}; 16 pairs spread 48 bytes in the original head, separator and question, "
            "digits right (chance 10%); the shipped checkpoint was trained in `{k}={v}` alone:\n\n"
            + table(["binding", "in phrasings.py's", "bytes between key and value", "own memory", "another document's memory"], rows))


FRAME_GROUPS = {"trained_shared": "trained, the question ending as the fact did before the key",
                "trained_different": "trained, the question ending otherwise",
                "heldout": "held out, as they are (no question ends as its fact did)",
                "heldout_echoed": "held out, each question followed by its fact's bytes before the key"}


def block_frames(r: dict) -> str:
    """The pass key by how the question ends: with the fact's bytes before the key, or otherwise."""
    f = r["frames"]
    rows = []
    for x in f["passkey_frames"]:
        shared = x["shared_bytes"]
        rows.append([FRAME_GROUPS[x["group"]], f"{x['sampled']} of {x['templates']}",
                     f"{shared[0]}-{shared[-1]}" if shared[0] != shared[-1] else str(shared[0]),
                     pct(x["own"]), est(x["loss_own"], 2), est(x["loss_swap"], 2)])
    distance = f["passkey_frames"][0]["distance"]
    return (f"{source(REPORTS['frames'], f)}; a 5-digit pass key {distance:,} bytes back, 2 rows per wording:\n\n"
            + table(["wordings", "sampled", "bytes the question's end shares with the fact's", "whole key right",
                     "nats per digit", "another document's memory, nats per digit"], rows))


def alike_line(r: dict) -> str:
    """Each model trained alike at the distances beyond a 512-token window: "label x / y%"."""
    frame = alike.curves([model for model in alike.ALIKE if r["alike"][model.key]], loaded=r["alike"])
    at = lambda label, measure, tokens: frame[(frame["label"] == label) & (frame["measure"] == measure)
                                              & (frame["tokens_back"] == tokens)]["mean"]
    parts = []
    for label in dict.fromkeys(frame["label"]):
        reread, key = at(label, "reread", 1000), at(label, "passkey", 1054)
        if len(reread) and len(key):
            parts.append(f"{label} {reread.iloc[0]:.3f} / {100 * key.iloc[0]:.1f}%")
    return "; ".join(parts)


# The paper's options beside the shipped choices (issue 31), each a model of the alike registry.
OPTIONS = (("hope", "shipped: linear memory; CMS periods 16, 64, 256, 1,024 learning a local target", "wordings"),
           ("fast-cms", "CMS periods 1, 2, 4, 8 (the default before this checkpoint)", "fast_wordings"),
           ("lm", "CMS levels learning from the next-token loss (the paper's objective), periods 16-1,024", "gating_lm"),
           ("deep", "the paper's 2-layer MLP memory (memory_depth 2), CMS periods 1, 2, 4, 8", "gating_deep"))
OPTION_CELLS = (("reread", 1000, "reread 1,000 back (second / first)"), ("copy", 1003, "copy 1,003 back (nats a letter)"),
                ("recall", 70, "recall 70 back"), ("passkey", 1054, "pass key 1,054 back"),
                ("passkey", 4054, "pass key 4,054 back"))


def block_options(r: dict) -> str:
    """Each of the paper's options and the shipped choices, trained alike: the headline measures."""
    registry = {model.key: model for model in alike.ALIKE}
    models = [registry[key] for key, _, _ in OPTIONS if r["alike"][key]]
    frame = alike.curves(models, loaded=r["alike"])
    rows = []
    for key, what, gating in OPTIONS:
        if not r["alike"][key]:
            continue
        row = [what]
        for measure, tokens, _ in OPTION_CELLS:
            hit = frame[(frame["model"] == key) & (frame["measure"] == measure) & (frame["tokens_back"] == tokens)]
            row.append((pct if alike.MEASURES[measure][4] else est)(hit.iloc[0]) if len(hit) else "not measured")
        row.append(next((est(x["bits_per_byte"][0]["model"]) for _, x in r["alike"][key] if x.get("bits_per_byte")),
                        "not measured"))
        rates = [g for layer_rows in r[gating]["gating"] for g in layer_rows if g["gap"] == 100]
        row.append("; ".join(f"layer {g['layer']} {g['first']['mean']:.3f} -> {g['second']['mean']:.3f}" for g in rates))
        rows.append(row)
    sources = ", ".join([f"`{path}`" for model in models for path, _ in r["alike"][model.key]]
                        + [f"`{REPORTS[gating]}`" for _, _, gating in OPTIONS])
    return (f"Trained by the same recipe (`--recipe cpu` with the setting named), 48 sequences each, 95% intervals "
            f"({sources}):\n\n" + table(["model"] + [title for _, _, title in OPTION_CELLS]
                                         + ["held-out prose, bits per byte",
                                            "memory learning rate, first reading -> reread 100 tokens later"], rows))


BLOCKS = {"summary": block_summary, "options": block_options, "targets": block_targets, "memory": block_memory,
          "validation": block_validation, "balanced": block_balanced, "wordings": block_wordings,
          "gating": block_gating, "phrasings": block_phrasings, "variants": block_variants,
          "recording": block_recording, "alike": block_alike,
          "bindings": block_bindings, "reach": block_reach, "frames": block_frames,
          "heldout-targets": block_heldout_targets}


def refresh(text: str, reports: dict) -> str:
    """``text`` with every block re-rendered; an unknown block name raises KeyError."""
    return BLOCK.sub(lambda m: m.group(1) + BLOCKS[m.group("name")](reports).rstrip("\n") + "\n" + m.group(4), text)


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is stale")
    args = parser.parse_args(argv)
    reports = load_reports()
    stale = []
    for path in documents():
        text = path.read_text()
        new = refresh(text, reports)
        if new != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(new)
    verb = "stale" if args.check else "rewritten"
    print(f"{verb}: {', '.join(map(str, stale))}" if stale else "every block is up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
