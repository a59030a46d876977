"""run_suite and ``python -m nested_learning validate`` end to end, including the error paths."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nested_learning import save_checkpoint
from nested_learning.cli import main
from nested_learning.validation import EXPERIMENTS, read_json, run_suite
from tests.conftest import tiny_model, write_prose
from tests.support.models import MEMORY_OFF

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"name", "title", "claim", "pass_rule", "passed", "seeds", "n_sequences", "metrics", "tables", "checks",
          "settings", "notes", "runtime_s", "judged"}


def test_quick_suite_returns_every_result_with_the_schema(model, prose):
    calls = []
    baseline = tiny_model("transformer", cms_periods=(), n_persistent_tokens=0)
    results = run_suite(model, quick=True, progress=lambda fraction, message: calls.append((fraction, message)),
                        prose=prose, baseline=baseline)
    assert [r.name for r in results] == list(EXPERIMENTS)
    assert [f for f, _ in calls] == [i / len(EXPERIMENTS) for i in range(len(EXPERIMENTS))] + [1.0]
    for result in results:
        data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
        assert set(data) == FIELDS and ("PASS when" in data["pass_rule"]) == data["judged"]
        assert data["n_sequences"] > 0 and data["runtime_s"] > 0 and data["seeds"]
        for metric in data["metrics"].values():
            assert set(metric) == {"mean", "ci_low", "ci_high", "n"}
            if metric["mean"] is not None:
                assert metric["ci_low"] <= metric["mean"] <= metric["ci_high"]
        assert data["passed"] == (data["judged"] and all(data["checks"].values()))
    assert results[0].checks["parameters_bit_identical_after_suite"]
    assert results[-1].passed  # module exactness holds whatever the model


def test_memory_switched_off_fails_every_memory_property(model, prose):
    results = run_suite(model, quick=True, base=MEMORY_OFF, prose=prose, only="memory_updates,repetition_learning,"
                        "in_context_association,memory_ablation,long_range_persistence")
    assert [r.passed for r in results] == [False] * 5


@pytest.mark.parametrize("preset, overrides", [("hope-paper", dict(cms_periods=(1, 2))),
                                               ("transformer", dict(cms_periods=(), n_persistent_tokens=0))])
def test_suite_runs_on_configs_without_attention_or_memory(preset, overrides, prose):
    model = tiny_model(preset, **overrides)
    results = {r.name: r for r in run_suite(model, quick=True, prose=prose, only="memory_updates,in_context_association,"
                                            "long_range_persistence,surprise_gating")}
    if preset == "transformer":  # nothing learns at test time: it must not pass
        assert not any(r.passed for r in results.values())
        assert results["in_context_association"].metrics["accuracy_own_minus_swap"].mean == 0.0
    else:  # no attention: only the conv reaches back, so every distance is judged
        assert results["long_range_persistence"].settings["reach"] == 2 * 3
        assert results["long_range_persistence"].settings["judged_distances"] == [48, 600]


def test_unknown_experiment_is_one_line(model):
    with pytest.raises(ValueError, match="unknown experiment 'nope'; choose from memory_updates"):
        run_suite(model, quick=True, only="nope")


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nested_learning", "validate", *map(str, args)], cwd=cwd or ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_cli_writes_json_and_report(tmp_path):
    checkpoint = save_checkpoint(tiny_model(), tmp_path / "tiny.safetensors")
    baseline = save_checkpoint(tiny_model("transformer", cms_periods=(), n_persistent_tokens=0), tmp_path / "base.safetensors")
    out, report = tmp_path / "out.json", tmp_path / "report.md"
    result = run_cli("--checkpoint", checkpoint, "--baseline", baseline, "--quick", "--json", out, "--report", report,
                     "--threads", "1", "--data", write_prose(tmp_path / "prose"), "--heldout-fraction", "0.5")
    assert result.returncode == 0, result.stderr
    assert "PASS      1. Memory updates at inference" in result.stdout and "properties hold" in result.stdout
    assert "REPORTED  7. Loss by position" in result.stdout
    meta, results = read_json(out)
    assert meta["source"] == "checkpoint tiny.safetensors" and meta["settings"] == "quick"
    assert meta["config"]["d_model"] == 32 and meta["wall_time_s"] > 0 and meta["reach"] == 38
    assert meta["baseline"].endswith("base.safetensors") and meta["rules_commit"]
    assert [r.name for r in results] == list(EXPERIMENTS)
    text = report.read_text()
    assert "reach without the memories 38 tokens" in text and meta["rules_commit"] in text
    for r in results:
        assert f"## {r.title}: {r.verdict}" in text and r.pass_rule in text


def test_cli_strict_exits_1_when_a_property_fails(tmp_path):
    checkpoint = save_checkpoint(tiny_model("transformer", cms_periods=(), n_persistent_tokens=0), tmp_path / "t.safetensors")
    result = run_cli("--checkpoint", checkpoint, "--quick", "--only", "memory_updates", "--strict", "--threads", "1")
    assert result.returncode == 1 and "FAIL      1. Memory updates at inference" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "missing.safetensors"], "missing.safetensors: no such file"),
    (["--checkpoint", "garbage.safetensors"], "not a safetensors file"),
])
def test_cli_bad_checkpoint_is_one_line_in_a_subprocess(tmp_path, args, message):
    (tmp_path / "garbage.safetensors").write_bytes(b"\x80\x04not a checkpoint at all")
    result = run_cli(*args, "--quick", "--json", tmp_path / "out.json", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--json", "no/such/dir/out.json"], "--json no/such/dir/out.json: directory no/such/dir does not exist"),
    (["--report", "no/such/dir/r.md"], "--report no/such/dir/r.md: directory no/such/dir does not exist"),
    (["--only", "memory_updates,telepathy"], "unknown experiment 'telepathy'"),
    (["--threads", "0"], "--threads must be positive"),
    (["--data", "no/such/folder"], "--data: no/such/folder"),
])
def test_cli_bad_arguments_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "--quick", *args]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {message}" or (message in err and len(err.strip().splitlines()) == 1)


def test_report_says_other_work_shared_the_machine_only_when_it_did():
    from nested_learning.validation.report import _load_note
    busy = _load_note({"load_average_1min_start": 2.5, "load_average_1min": 3.0})
    idle = _load_note({"load_average_1min_start": 0.2, "load_average_1min": 1.9})
    assert "other processes were running" in busy and "2.5" in busy
    assert "other processes" not in idle and "0.2" in idle and "1.9" in idle
