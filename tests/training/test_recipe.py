"""Training recipes: a curriculum as data, stages chained by their weights, skipped when done; task mixtures."""
import dataclasses
import json
import random
from pathlib import Path

import pytest

from nested_learning.training import tasks
from nested_learning.checkpoint import read_checkpoint_info
from nested_learning.cli import main
from nested_learning.metrics_file import read_metrics
from nested_learning.training.recipe import RECIPES, load_recipe, stage_configs, stage_paths
from nested_learning.training.trainer import TrainConfig
from tests.conftest import TINY
from tests.support.training import write_text


def tiny_recipe(tmp_path):
    recipe = {"name": "t", "model": {"preset": "hope", "overrides": {**TINY, "cms_periods": [1, 2]}},
              "common": {"eval_windows": 2, "eval_task_samples": 2, "eval_every": 0, "checkpoint_every": 0,
                         "log_every": 1, "heldout_fraction": 0.1},
              "stages": [{"name": "copy", "steps": 2, "batch_size": 2, "seq_len": 48, "bptt": 48, "lr": 1e-3,
                          "warmup_steps": 1, "task_fraction": 1.0, "tasks": {"repeat": {"length": [4, 8]}}},
                         {"name": "gapped", "steps": 3, "batch_size": 2, "seq_len": 96, "bptt": 48, "lr": 1e-3,
                          "warmup_steps": 1, "task_fraction": 0.5,
                          "tasks": {"repeat": {"length": [4, 8], "gap": [20, 40]}, "passkey": {"filler_bytes": [16, 32]}}}]}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe))
    return path


def test_recipe_runs_every_stage_from_the_one_before_and_skips_them_when_done(tmp_path, capsys):
    out = tmp_path / "run" / "m.safetensors"
    argv = ["train", "--recipe", str(tiny_recipe(tmp_path)), "--data", str(write_text(tmp_path / "text")),
            "--out", str(out), "--threads", "1"]
    assert main(argv) == 0
    first, second = stage_paths(out, load_recipe(str(tmp_path / "recipe.json")))
    assert first.exists() and second.exists() and out.exists()
    config, metadata, _ = read_checkpoint_info(out)
    assert config.cms_periods == (1, 2) and config.attention_window == 16
    assert metadata["train_config"]["init"] == str(first)  # stage 2 started from stage 1's weights
    assert metadata["train_config"]["seq_len"] == 96 and metadata["recipe"]["name"] == "t"
    lines = read_metrics(out.with_suffix(".metrics.jsonl"))
    train_lines = [r for r in lines if r["kind"] == "train"]
    assert [(r["stage"], r["step"]) for r in train_lines] == [("copy", 1), ("copy", 2), ("gapped", 3), ("gapped", 4), ("gapped", 5)]
    assert train_lines[-1]["tokens"] == 2 * 2 * 48 + 3 * 2 * 96
    before = out.stat().st_mtime_ns, first.stat().st_mtime_ns, second.stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().err.count("complete, skipped") == 2
    assert (first.stat().st_mtime_ns, second.stat().st_mtime_ns) == before[1:]  # nothing retrained
    assert len(read_metrics(out.with_suffix(".metrics.jsonl"))) == len(lines)  # curves not doubled


def test_stage_configs_take_the_run_settings_and_the_stage_settings():
    recipe = load_recipe("cpu")
    base = TrainConfig(out="runs/x.safetensors", data=["d"], preset="transformer", seed=3)
    configs = stage_configs(recipe, base)
    assert [c.seq_len for c in configs] == [s["seq_len"] for s in recipe["stages"]]
    assert max(c.seq_len for c in configs) >= 2048
    assert configs[0].preset == "transformer" and configs[0].init == "" and configs[1].init == configs[0].out
    assert all(c.seed == 3 and c.data == ["d"] for c in configs)
    assert set(configs[-1].tasks) == {"repeat", "recall", "passkey"} and configs[-1].task_options["passkey"]
    assert not any(c.balance_windows for c in configs)
    balanced = stage_configs(load_recipe("cpu-balanced"), base)
    assert all(c.balance_windows for c in balanced) and balanced[-1].task_fraction == 0.5
    assert [c.steps for c in balanced] == [c.steps for c in configs[:4]]  # the same curriculum otherwise
    assert configs[-1].reread_gap > 0 and not any(c.reread_gap for c in configs[:-1])
    attention = stage_configs(load_recipe("cpu-attention"), dataclasses.replace(base, preset=""))
    assert attention[0].preset == "transformer" and attention[0].steps == 15 * configs[0].steps  # copying takes longer
    same = lambda c: dataclasses.replace(c, steps=0, preset="", model_overrides={})
    assert [same(c) for c in attention] == [same(c) for c in stage_configs(recipe, dataclasses.replace(base, preset=""))]


def test_the_cpu_recipe_builds_the_shipped_models_cms_and_only_for_its_own_preset():
    """`--recipe cpu` reproduces the shipped checkpoint's slow CMS levels; a transformer or titans trained by
    it gets none (the overrides belong to the recipe's preset), and --set still wins."""
    base = TrainConfig(out="runs/x.safetensors", data=["d"])
    shipped = Path(__file__).resolve().parents[2] / "assets" / "hope-default.safetensors"
    hope = stage_configs(load_recipe("cpu"), base)[0]
    assert hope.preset == "hope" and hope.model_overrides == {"cms_periods": [16, 64, 256, 1024]}
    assert list(read_checkpoint_info(shipped)[0].cms_periods) == hope.model_overrides["cms_periods"]
    for preset in ("transformer", "titans"):
        assert stage_configs(load_recipe("cpu"), dataclasses.replace(base, preset=preset))[0].model_overrides == {}
    mine = stage_configs(load_recipe("cpu"), dataclasses.replace(base, model_overrides={"cms_periods": [1, 2]}))[0]
    assert mine.model_overrides == {"cms_periods": [1, 2]}
    for name in ("cpu-balanced", "cpu-phrasings", "cpu-attention"):  # measured at periods 1, 2, 4, 8 (their preset's)
        assert stage_configs(load_recipe(name), base)[0].model_overrides == {}


@pytest.mark.parametrize("content, message", [
    ({"stages": []}, "non-empty list of stages"),
    ({"stages": [{"name": "a", "stepz": 3}]}, "unknown field(s) stepz"),
    ({"stages": [{"name": "a"}, {"name": "a"}]}, "unique word"),
    ({"stages": [{"name": "a"}], "extra": 1}, "unknown key(s) extra"),
])
def test_bad_recipes_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_recipe(str(path))
    with pytest.raises(ValueError, match="neither a recipe"):
        load_recipe("no-such-recipe")
    assert set(RECIPES) >= {"cpu", "tiny"}


def test_task_options_set_ranges_and_weights():
    options = {"repeat": {"length": [10, 12], "gap": [30, 40], "weight": 1}, "recall": {"weight": 0}}
    tokens, weights = tasks.pack_tasks(7, 2000, ["repeat", "recall"], options)
    text = bytes(tokens).decode("ascii")
    assert "recall:" not in text and text.count("repeat: ") >= 20
    for line in text.split("\n")[:-2]:  # the last sample may have shrunk to fit, then padding
        string, rest = line[len("repeat: "):].split(" ", 1)
        assert 10 <= len(string) <= 12 and rest.endswith(" | " + string)
        assert 30 <= 1 + len(rest) - len(" | " + string) <= 40  # the gap: a space and filler
    with pytest.raises(ValueError, match="no parameter"):
        tasks.check_task_options({"repeat": {"gapp": [1, 2]}})
    with pytest.raises(ValueError, match="range"):
        tasks.check_task_options({"repeat": {"gap": [5, 1]}})


def test_filler_is_clean_ascii_of_the_exact_size():
    filler = tasks.Filler("Zoë said | hello\nworld, " * 20)
    for seed in range(20):
        text = filler(random.Random(seed), 37)
        assert len(text) == 37 and text.isascii() and "|" not in text and "\n" not in text
    sentences = tasks.SENTENCES(random.Random(0), 50)
    assert len(sentences) == 50 and any(sentences.startswith(d) for d in tasks.DISTRACTORS)
    sample = tasks.passkey(3, filler_bytes=300, filler=filler)
    assert sample.answers == sample.text.split("The pass key is ")[1][:5]
    spread = tasks.associative_recall(1, n_pairs=3, spread=40)
    assert spread.answers == "".join(spread.text.split(";")[1].replace("=", " ").split()[1::2])
