"""Quoted results cannot drift (issue 30): README's and docs/results.md's numbers are generated from
reports/*.json by bench/make_results.py, README quotes no result outside a generated block, no doc copies
a report's number by hand, and README's two commands are the ones CI runs."""
import copy
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_results", ROOT / "bench" / "make_results.py")
make_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_results)

# A result-like number: two or more decimals (0.441, 1.942), or a percentage (93.8%, 10%).
RESULT_NUMBER = re.compile(r"\d\.\d{2,}|\d%")


@pytest.fixture(scope="module")
def reports():
    return make_results.load_reports()


def outside_blocks(text: str) -> str:
    return make_results.BLOCK.sub("", text)


def test_every_generated_block_is_what_its_report_gives(reports):
    for path in make_results.documents():
        text = path.read_text()
        assert make_results.refresh(text, reports) == text, f"{path.name} is stale: run python bench/make_results.py"


def test_readme_and_results_doc_hold_the_generated_blocks():
    names = lambda path: [m.group("name") for m in make_results.BLOCK.finditer(path.read_text())]
    assert names(ROOT / "README.md") == ["recording", "summary", "options"]
    assert sorted(names(ROOT / "docs" / "results.md")) == ["alike", "balanced", "bindings", "frames", "gating", "heldout-targets", "memory", "phrasings", "reach", "targets", "validation", "variants", "wordings"]
    for path in make_results.documents():
        assert set(names(path)) <= set(make_results.BLOCKS), path.name
        # An opening marker without its closing one would leave the block out of every check.
        assert len(re.findall(r"<!-- results:[a-z0-9-]+ -->", path.read_text())) == len(names(path)), path.name


def test_a_changed_report_changes_every_place_that_quotes_it(reports):
    changed = copy.deepcopy(reports)
    far = next(r for r in changed["targets"]["reread"] if r["gap"] == 1000)
    was = f"{far['ratio_own']['mean']:.3f}"
    far["ratio_own"]["mean"] = 0.987654
    readme = (ROOT / "README.md").read_text()
    assert was in readme
    new = make_results.refresh(readme, changed)
    # Three places quote it: the summary's reread, its line on models trained alike and the options table
    # (another report's number may happen to read the same).
    assert new.count("0.988") == 3 and new.count(was) == readme.count(was) - 3
    # The target's verdict follows the number: a reread at 0.988 of the first reading misses "at most 0.5".
    row = next(line for line in make_results.block_targets(changed).splitlines() if "128-byte passage" in line)
    assert row.endswith("| no |") and "0.988" in row
    met = sum(row[2] == "yes" for row in make_results.target_rows(reports["targets"]))
    assert f"targets met: {met - 1} of 8" in make_results.block_summary(changed)


def test_the_held_out_verdicts_follow_their_reports(reports):
    """Issue 27's table judges each held-out measurement: recall at 85% meets "at least 80%", a copy 1,000
    bytes back at 0.6 nats misses "at most 0.5", and README's count follows the verdicts."""
    changed = copy.deepcopy(reports)
    recall = next(x for x in changed["wordings"]["wordings"] if x["task"] == "recall" and x["wordings"] == "heldout")
    recall["own"] = {"mean": 0.85, "ci_low": 0.8, "ci_high": 0.9}
    far = next(x for x in changed["copy_far"]["wordings_far"] if x["wordings"] == "heldout")
    far["own"] = {"mean": 0.6, "ci_low": 0.5, "ci_high": 0.7}
    rows = {row[0]: row for row in make_results.heldout_target_rows(changed)}
    assert rows["recall of 16 pairs at least 80%"][1:] == ["85.0% [80.0, 90.0]", "yes"]
    copy_row = next(row for name, row in rows.items() if name.startswith("32-letter copy"))
    assert "0.600 [0.500, 0.700]" in copy_row[1] and copy_row[2] == "no"
    for report in (reports, changed):
        met = sum(row[2] == "yes" for row in make_results.heldout_target_rows(report))
        assert f"issue 27's targets: {met} of 5" in make_results.block_summary(report)


def test_readme_quotes_results_only_in_generated_blocks():
    text = outside_blocks((ROOT / "README.md").read_text()).replace("Python 3.11", "")
    found = RESULT_NUMBER.findall(re.sub(r"arXiv \d{4}\.\d{5}", "", text))
    assert not found, f"README quotes {found} outside a generated block: add it to bench/make_results.py"


def test_results_doc_quotes_by_hand_only_under_history():
    text = (ROOT / "docs" / "results.md").read_text()
    current, history = text.split("\n## History\n")
    assert not RESULT_NUMBER.findall(outside_blocks(current))
    assert "not kept" in history[:400]  # the history says at its top that no report is behind it


def estimates(node) -> list[dict]:
    """Every {mean, ci_low, ci_high} in a report."""
    if isinstance(node, dict):
        found = [node] if {"mean", "ci_low", "ci_high"} <= node.keys() else []
        return found + [e for value in node.values() for e in estimates(value)]
    return [e for value in node for e in estimates(value)] if isinstance(node, list) else []


def rounds_to(value: float, quoted: str, percent: bool) -> bool:
    decimals = len(quoted.partition(".")[2])
    return round(100 * value if percent else value, decimals) == float(quoted)


# A number quoted with its interval: "0.441 [0.420, 0.464]", "93.8% [85.4, 100]".
QUOTED_ESTIMATE = re.compile(r"(?<![\d.])(-?\d+(?:\.\d+)?)(%?) \[(-?\d+(?:\.\d+)?), (-?\d+(?:\.\d+)?)\]")


def test_no_doc_copies_a_report_by_hand(reports):
    """An estimate of a report (mean and interval) appears in a doc only inside a generated block: a hand
    copy would not follow the next report. Three numbers matching at once is a copy, not a coincidence."""
    known = [e for report in reports.values() for e in estimates(report)]
    assert len(known) > 200
    for path in make_results.documents():
        text = outside_blocks(path.read_text())
        for m in QUOTED_ESTIMATE.finditer(text):
            mean, percent, low, high = m.group(1), bool(m.group(2)), m.group(3), m.group(4)
            if float(low) == float(high):
                continue  # "0% [0, 0]": every estimate that never varies looks the same
            copied = [e for e in known if rounds_to(e["mean"], mean, percent) and rounds_to(e["ci_low"], low, percent)
                      and rounds_to(e["ci_high"], high, percent)]
            assert not copied, f"{path.name} copies {m.group(0)!r} from reports/ by hand: quote it in a generated block"


def test_readme_commands_are_the_ones_that_work_and_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "\n    pip install -r requirements.txt && streamlit run app.py\n" in readme
    assert "\n    pip install -r requirements-dev.txt && python -m pytest\n" in readme
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.lstrip().startswith("#")]
    assert "python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt" in ci
    tests = [line for line in ci if "pytest" in line]
    assert len(tests) == 1 and tests[0].replace(" -q", "") == "python -m pytest"  # -q: quieter, the same tests
