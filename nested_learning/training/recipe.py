"""Training recipes: a whole curriculum as data, run by one command.

    python -m nested_learning train --recipe cpu --data corpus/ --out assets/hope-default.safetensors

A recipe is a JSON object (a name in ``RECIPES`` or a ``.json`` file)::

    {"name": ..., "description": ...,
     "model": {"preset": "hope", "overrides": {...}},        # the CLI's --set takes precedence; another --preset drops the overrides
     "common": {TrainConfig fields shared by every stage},
     "stages": [{"name": ..., TrainConfig fields of this stage, "tasks": {task: {weight, ranges}}}, ...]}

Stage i starts from stage i-1's weights (``init``: a fresh optimizer and schedule per stage) and writes
``<out stem>.stage<i>-<name>.safetensors``; the last one is copied to ``--out`` with the whole
curriculum's metrics (``<out>.metrics.jsonl``, each line tagged with its stage, steps and tokens
counted from the recipe's start). Running the command again skips stages already complete and
resumes an interrupted one, so a recipe survives being stopped at any point.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

from ..checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from ..metrics_file import metrics_path, read_metrics
from .resume import resume_path
from .trainer import TrainConfig, _thinned, train

# What a stage may set (the rest is the run's: data, out, device, seed, logging).
STAGE_FIELDS = ("steps", "batch_size", "seq_len", "bptt", "lr", "min_lr", "warmup_steps", "weight_decay",
                "grad_clip", "task_fraction", "task_phrasings", "reread_fraction", "reread_gap", "balance_windows", "eval_every", "checkpoint_every",
                "eval_windows", "eval_task_samples", "log_every", "heldout_fraction")

# The CPU curriculum: copy densely, then across gaps beyond the attention window, then recall and
# passkeys spread over longer and longer windows, with prose rereads and plain prose throughout.
# Sized for the default model on a 2-core CPU (docs/training.md "The shipped checkpoint" gives the measured time).
CPU = {
    "name": "cpu",
    "description": "dense copy -> gapped copy, spread recall, passkeys -> 1,024 then 2,048-byte windows mixed with prose "
                   "-> rereads across other prose",
    # Slow CMS levels: they find what was read thousands of tokens back more often than the preset's
    # periods 1, 2, 4, 8 (docs/training.md "Longer reach").
    "model": {"preset": "hope", "overrides": {"cms_periods": [16, 64, 256, 1024]}},
    "common": {"heldout_fraction": 0.03, "eval_windows": 16, "eval_task_samples": 32, "eval_every": 0,
               "checkpoint_every": 50, "log_every": 10, "min_lr": 1e-4, "weight_decay": 0.1, "grad_clip": 1.0},
    "stages": [
        # Dense copying alone first: mixed with prose and recall, copying had not emerged after 300 steps;
        # alone it emerges after about 100 (docs/training.md "Recipes").
        {"name": "copy", "steps": 400, "batch_size": 16, "seq_len": 128, "bptt": 128, "lr": 2e-3, "warmup_steps": 30,
         "task_fraction": 1.0, "tasks": {"repeat": {"length": [8, 48]}}},
        {"name": "gapped", "steps": 300, "batch_size": 16, "seq_len": 512, "bptt": 512, "lr": 2e-3, "warmup_steps": 20,
         "task_fraction": 0.6, "reread_fraction": 0.5,
         "tasks": {"repeat": {"weight": 2, "length": [8, 48], "gap": [16, 384]},
                   "recall": {"n_pairs": [4, 16], "spread": [0, 48]},
                   "passkey": {"filler_bytes": [32, 400]}}},
        {"name": "long", "steps": 400, "batch_size": 8, "seq_len": 1024, "bptt": 1024, "lr": 1.5e-3, "warmup_steps": 20,
         "task_fraction": 0.5, "reread_fraction": 0.5,
         "tasks": {"repeat": {"weight": 2, "length": [16, 48], "gap": [64, 900]},
                   "recall": {"n_pairs": [4, 16], "spread": [16, 64]},
                   "passkey": {"filler_bytes": [128, 900]}}},
        {"name": "mixed", "steps": 600, "batch_size": 4, "seq_len": 2048, "bptt": 2048, "lr": 1e-3, "warmup_steps": 20,
         "task_fraction": 0.4, "reread_fraction": 0.4,
         "tasks": {"repeat": {"weight": 2, "length": [16, 48], "gap": [64, 1900]},
                   "recall": {"n_pairs": [4, 16], "spread": [16, 128]},
                   "passkey": {"filler_bytes": [256, 1950]}}},
        # Rereads with other prose between the readings, as the measured reread target reads them (in the
        # stages before, a passage only ever follows itself), at a third of the mixed stage's rate
        # (docs/training.md "Rereads across other prose").
        {"name": "reread", "steps": 150, "batch_size": 4, "seq_len": 2048, "bptt": 2048, "lr": 5e-4, "warmup_steps": 10,
         "task_fraction": 0.4, "reread_fraction": 0.5, "reread_gap": 1536,
         "tasks": {"repeat": {"weight": 2, "length": [16, 48], "gap": [64, 1900]},
                   "recall": {"n_pairs": [4, 16], "spread": [16, 128]},
                   "passkey": {"filler_bytes": [256, 1950]}}},
    ],
}

# The first four stages with balanced windows (a task window weighs as much as a prose window) and half
# tasks in the last stage. Measured with the memory before shifted keys, it kept the copying the first
# stage teaches but never learned to reread prose; docs/training.md "Recipes" has both runs' numbers.
CPU_BALANCED = copy.deepcopy(CPU)
CPU_BALANCED["stages"] = CPU_BALANCED["stages"][:4]  # as measured (the reread stage came later)
CPU_BALANCED.update(name="cpu-balanced", description="dense copy -> gapped copy, spread recall, passkeys -> 1,024 "
                    "then 2,048-byte windows mixed with prose; windows balanced")
CPU_BALANCED["common"]["balance_windows"] = True
CPU_BALANCED["model"]["overrides"] = {}  # as measured: CMS periods 1, 2, 4, 8
CPU_BALANCED["stages"][3].update(task_fraction=0.5, reread_fraction=0.5)

# The cpu curriculum with every task sample worded from the many trained templates (phrasings.py, issue 27):
# the held-out wordings the targets are judged in are never drawn. Same stages, steps and data otherwise.
CPU_PHRASINGS = copy.deepcopy(CPU)
CPU_PHRASINGS.update(name="cpu-phrasings", description=CPU["description"] + "; tasks in the many trained wordings")
CPU_PHRASINGS["common"]["task_phrasings"] = "trained"
CPU_PHRASINGS["model"]["overrides"] = {}  # as measured: CMS periods 1, 2, 4, 8

# The cpu curriculum with a copy stage long enough for attention to learn to copy: a transformer's
# copy loss stays at chance for the cpu recipe's 400 steps, where Hope's memory copies within 100
# (docs/training.md "A curriculum for attention"). Same later stages, data and seed.
CPU_ATTENTION = copy.deepcopy(CPU)
CPU_ATTENTION.update(name="cpu-attention", description=CPU["description"] + "; a copy stage of 6,000 steps")
CPU_ATTENTION["model"] = {"preset": "transformer", "overrides": {}}
CPU_ATTENTION["stages"][0]["steps"] = 6000

# A few minutes: the same curriculum, shrunk (tests and a first look).
TINY = {
    "name": "tiny",
    "description": "the cpu recipe's shape in a few steps per stage",
    "model": {"preset": "hope", "overrides": {}},
    "common": {"eval_windows": 2, "eval_task_samples": 4, "eval_every": 0, "checkpoint_every": 0, "log_every": 1},
    "stages": [
        {"name": "copy", "steps": 2, "batch_size": 2, "seq_len": 64, "bptt": 64, "lr": 1e-3, "warmup_steps": 1,
         "task_fraction": 0.5, "tasks": {"repeat": {"length": [4, 16]}}},
        {"name": "gapped", "steps": 2, "batch_size": 2, "seq_len": 128, "bptt": 64, "lr": 1e-3, "warmup_steps": 1,
         "task_fraction": 0.5, "reread_fraction": 0.5,
         "tasks": {"repeat": {"length": [4, 16], "gap": [16, 64]}, "passkey": {"filler_bytes": [16, 64]}}},
    ],
}

RECIPES = {"cpu": CPU, "cpu-balanced": CPU_BALANCED, "cpu-phrasings": CPU_PHRASINGS, "cpu-attention": CPU_ATTENTION,
           "tiny": TINY}


def load_recipe(spec: str) -> dict:
    """A built-in recipe by name, or a JSON file; checked (one-line ValueError on anything wrong)."""
    if spec in RECIPES:
        recipe = copy.deepcopy(RECIPES[spec])
    else:
        path = Path(spec)
        if path.suffix.lower() != ".json" or not path.is_file():
            raise ValueError(f"--recipe: {spec!r} is neither a recipe ({', '.join(RECIPES)}) nor a .json file")
        try:
            recipe = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"--recipe {path}: not valid JSON ({e})") from None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("stages"), list) or not recipe["stages"]:
        raise ValueError("a recipe is a JSON object with a non-empty list of stages")
    unknown = sorted(set(recipe) - {"name", "description", "model", "common", "stages"})
    if unknown:
        raise ValueError(f"recipe: unknown key(s) {', '.join(unknown)}")
    names = set()
    for i, stage in enumerate(recipe["stages"]):
        if not isinstance(stage, dict):
            raise ValueError(f"recipe stage {i} must be an object")
        name = stage.get("name", f"stage{i}")
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum() or name in names:
            raise ValueError(f"recipe stage {i}: name must be a unique word (letters, digits, - or _), got {name!r}")
        names.add(name)
        bad = sorted(set(stage) - set(STAGE_FIELDS) - {"name", "tasks"})
        if bad:
            raise ValueError(f"recipe stage {name!r}: unknown field(s) {', '.join(bad)}; use {', '.join(STAGE_FIELDS)} or tasks")
    bad = sorted(set(recipe.get("common", {})) - set(STAGE_FIELDS))
    if bad:
        raise ValueError(f"recipe common: unknown field(s) {', '.join(bad)}")
    return recipe


def stage_paths(out: Path, recipe: dict) -> list[Path]:
    out = Path(out)
    return [out.with_name(f"{out.stem}.stage{i}-{stage.get('name', f'stage{i}')}{out.suffix}")
            for i, stage in enumerate(recipe["stages"])]


def stage_configs(recipe: dict, base: TrainConfig) -> list[TrainConfig]:
    """One TrainConfig per stage: ``base`` (the run's data, out, device, seed ...) with the recipe's
    common and stage settings; stage 0 builds the model, later stages start from the one before."""
    model = recipe.get("model", {})
    own = model.get("preset", "hope")
    preset = base.preset or own
    # The recipe's overrides are settings of its own preset (a transformer trained by it gets no CMS levels).
    overrides = {**(model.get("overrides", {}) if preset == own else {}), **base.model_overrides}
    configs = []
    for i, (stage, path) in enumerate(zip(recipe["stages"], stage_paths(Path(base.out), recipe))):
        settings = {**recipe.get("common", {}), **{k: v for k, v in stage.items() if k in STAGE_FIELDS}}
        task_options = stage.get("tasks", {})
        config = dataclasses.replace(
            base, out=str(path), preset=preset, model_overrides=overrides if i == 0 else {},
            init=str(configs[-1].out) if i else base.init, tasks=list(task_options) or list(base.tasks),
            task_options=copy.deepcopy(task_options), **settings)
        if config.init and i == 0:
            config.model_overrides = {}
        if not config.tasks:
            config.task_fraction = 0.0
        configs.append(config)
    return configs


def _is_complete(path: Path) -> bool:
    if not path.exists() or resume_path(path).exists():
        return False
    try:
        return read_checkpoint_info(path)[1].get("status") == "complete"
    except ValueError:
        return False


def run_recipe(recipe: dict, base: TrainConfig, progress=print) -> dict:
    """Run every stage not yet complete (resuming an interrupted one), then write ``base.out`` and its
    combined metrics. Returns the last stage's evaluation report."""
    configs = stage_configs(recipe, base)
    configs[0].validate()  # later stages are checked when they start (their init does not exist yet)
    report = None
    for i, config in enumerate(configs):
        path = Path(config.out)
        if _is_complete(path):
            progress(f"stage {i} ({recipe['stages'][i].get('name')}): complete, skipped ({path})")
            continue
        config.resume = resume_path(path).exists()
        progress(f"stage {i} ({recipe['stages'][i].get('name')}): {config.steps} steps of {config.batch_size} x "
                 f"{config.seq_len} bytes{' (resuming)' if config.resume else ''}")
        report = train(config)
    out = Path(base.out)
    metrics = combined_metrics(recipe, configs)
    model = load_checkpoint(configs[-1].out, device="cpu")
    metadata = read_checkpoint_info(configs[-1].out)[1]
    report = report or metadata.get("eval", {})
    metadata.update(recipe=recipe, stages=[c.out for c in configs], metrics=_thinned(metrics),
                    command=base.command or metadata.get("command", ""))
    save_checkpoint(model, out, metadata)
    metrics_path(out).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in metrics))
    progress(f"saved {out} and {metrics_path(out)}")
    return report


def combined_metrics(recipe: dict, configs: list[TrainConfig]) -> list[dict]:
    """Every stage's metrics lines, tagged with the stage, steps and tokens counted from the recipe's start."""
    lines, step0, tokens0 = [], 0, 0
    for stage, config in zip(recipe["stages"], configs):
        for record in read_metrics(metrics_path(Path(config.out))):
            lines.append({**record, "stage": stage.get("name"), "stage_step": record.get("step"),
                          "step": record.get("step", 0) + step0, "tokens": record.get("tokens", 0) + tokens0})
        step0 += config.steps
        tokens0 += config.steps * config.batch_size * config.seq_len
    return lines
