"""The record command end to end, in a subprocess, including its error paths."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nested_learning import save_checkpoint
from nested_learning.recording import Recording
from tests.conftest import tiny_model

ROOT = Path(__file__).resolve().parents[2]


def run(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # importable from any working directory
    return subprocess.run([sys.executable, "-m", "nested_learning", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_help_lists_commands():
    result = run("--help")
    assert result.returncode == 0 and "record" in result.stdout
    assert "--checkpoint" in run("record", "--help").stdout


def test_record_text_with_checkpoint_and_csv(tmp_path):
    checkpoint = save_checkpoint(tiny_model(), tmp_path / "tiny.safetensors")
    out, csv = tmp_path / "run.safetensors", tmp_path / "run.csv"
    result = run("record", "--text", "abcabcabc", "--checkpoint", checkpoint, "--ablate", "cms.1", "--out", out, "--csv", csv)
    assert result.returncode == 0, result.stderr
    assert "recorded 9 tokens (checkpoint tiny.safetensors)" in result.stdout
    assert "mean surprise per layer: L0" in result.stdout
    assert "CMS updates, layer 0: level 0 (period 1): 9, level 2 (period 4): 2, level 3 (period 8): 1" in result.stdout
    recording = Recording.load(out)
    assert recording.text == "abcabcabc" and recording.ablation.names_off() == ["cms.1"]
    assert csv.read_text().count("\n") == 9 * 2 * 2 + 1


def test_record_file_of_any_bytes(tmp_path):
    source = tmp_path / "input.bin"
    source.write_bytes(b"\xff\xfe not utf-8 \x00 bytes")
    out = tmp_path / "run.safetensors"
    result = run("record", "--file", source, "--preset", "titans", "--out", out)
    assert result.returncode == 0, result.stderr
    assert Recording.load(out).n_tokens == len(source.read_bytes())


@pytest.mark.parametrize("args, message", [
    (["--file", "missing.txt"], "missing.txt: no such file"),
    (["--text", "hi", "--ablate", "memroy"], "unknown ablation 'memroy'"),
    (["--text", "x" * 50, "--max-tokens", "10"], "input is 50 tokens (bytes); the limit is 10"),
    (["--text", "hi", "--checkpoint", "garbage.safetensors"], "not a safetensors file"),
    (["--text", "hi", "--top-k", "0"], "top_k must be in [1, 256]"),
    (["--text", "hi", "--device", "tpu"], "unknown device 'tpu'; use auto, cpu or cuda"),
])
def test_errors_are_one_line_without_traceback(tmp_path, args, message):
    (tmp_path / "garbage.safetensors").write_bytes(b"\x80\x04not a checkpoint at all")
    result = run("record", *args, "--out", tmp_path / "out.safetensors", cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.safetensors").exists()


def test_missing_required_arguments():
    result = run("record", "--text", "hi")
    assert result.returncode == 2 and "--out" in result.stderr


def test_out_naming_a_folder_is_one_line_and_leaves_no_file(tmp_path):
    """Issue 29 item 6: `--out DIR/` left a `.tmp-*.safetensors` in the parent folder."""
    checkpoint = save_checkpoint(tiny_model(), tmp_path / "tiny.safetensors")
    folder = tmp_path / "out"
    folder.mkdir()
    for out in (f"{folder}/", str(folder)):
        result = run("record", "--text", "abc", "--checkpoint", checkpoint, "--out", out)
        assert result.returncode == 2 and "is a folder: name the file to write" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "tiny.safetensors"]
