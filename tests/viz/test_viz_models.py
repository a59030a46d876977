"""Model choice, parameter counts, training curves and downloads."""
import io
import json

import pandas as pd
import pytest
import torch

from nested_learning import CheckpointError, load_checkpoint, save_checkpoint
from nested_learning.recording import Recording, record
from nested_learning.viz import models
from tests.conftest import tiny_model


def test_default_choice_follows_the_shipped_file(tmp_path, monkeypatch, model):
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", tmp_path / "missing.safetensors")
    choice, notice = models.default_choice("cpu")
    assert (choice.kind, choice.name) == ("preset", "hope") and "random-init" in notice
    path = save_checkpoint(model, tmp_path / "shipped.safetensors")
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", path)
    choice, notice = models.default_choice("cpu")
    assert (choice.kind, choice.name, notice) == ("shipped", "shipped.safetensors", None)
    loaded = models.build_model(choice)
    assert loaded.config == model.config
    assert models.ModelChoice("preset", "hope", "cpu").key != models.ModelChoice("preset", "hope", "cuda").key


def test_parameter_table_counts_every_parameter_once(model):
    table = models.parameter_table(model)
    rows = dict(zip(table["component"], table["parameters"]))
    assert rows["total"] == sum(p.numel() for p in model.parameters())  # the tied matrix once
    assert rows["total"] == sum(v for k, v in rows.items() if k != "total")
    assert rows["embedding (tied with output)"] == 256 * 32
    assert {"attention", "memory", "cms", "ffn", "norms"} <= set(rows)


def test_read_metrics_skips_what_it_cannot_use(tmp_path):
    assert models.read_metrics(tmp_path / "none.metrics.jsonl").empty
    path = tmp_path / "run.metrics.jsonl"
    lines = [{"kind": "train", "step": 1, "tokens": 10, "loss": 5.0, "bpb": 7.2},
             {"kind": "eval", "step": 2, "heldout_bpb": 6.9, "recall_accuracy": 0.1},
             "not json", {"no": "step"}, {"step": True, "loss": 1.0}, {"kind": "train", "step": 3, "loss": 4.0}]
    path.write_text("\n".join(json.dumps(l) if isinstance(l, dict) else l for l in lines) + '\n{"step": 4, "lo')
    frame = models.read_metrics(path)
    assert list(frame["step"]) == [1, 2, 3]
    fig = models.training_curve(frame)
    names = {trace.name for trace in fig.data}
    assert names == {"loss", "bpb", "heldout_bpb", "recall_accuracy"}
    loss = next(t for t in fig.data if t.name == "loss")
    assert list(loss.x) == [1, 3] and list(loss.y) == [5.0, 4.0]
    assert models.training_curve(pd.DataFrame()) is None
    assert models.training_curve(models.read_metrics([{"step": 1, "tokens": 3}])) is None


def test_downloads_round_trip(model):
    restored = load_checkpoint(models.checkpoint_bytes(model), device="cpu")
    for (name, a), (_, b) in zip(model.named_parameters(), restored.named_parameters()):
        assert torch.equal(a, b), name
    rec, _ = record(model, "round trip")
    again = Recording.load(models.recording_bytes(rec))
    assert again.text == "round trip" and torch.equal(again.stream("loss")[:-1], rec.stream("loss")[:-1])
    table = pd.read_csv(io.BytesIO(models.recording_csv(rec)))
    assert len(table) == rec.n_tokens * 2 * 2 and {"surprise", "learning_rate", "loss"} <= set(table.columns)


def test_build_model_refuses_unknown_names():
    with pytest.raises(ValueError):
        models.build_model(models.ModelChoice("preset", "nope"))
    with pytest.raises(ValueError):
        models.build_model(models.ModelChoice("upload", "x.safetensors"))


def test_other_shipped_checkpoints_load_by_name_only(tmp_path, monkeypatch, model):
    """The checkpoints beside the default one load by their file name; a name not among them (a path, a
    file elsewhere) is refused before anything is read."""
    default = save_checkpoint(model, tmp_path / "assets" / "default.safetensors")
    variant = tiny_model("transformer", seed=2)
    save_checkpoint(variant, tmp_path / "assets" / "variant.safetensors")
    save_checkpoint(variant, tmp_path / "elsewhere.safetensors")
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", default)
    assert models.other_checkpoints() == ["variant.safetensors"]
    loaded = models.build_model(models.ModelChoice("checkpoint", "variant.safetensors"))
    assert loaded.config == variant.config and models.ModelChoice("checkpoint", "variant.safetensors").label.startswith("checkpoint")
    for name in ("../elsewhere.safetensors", str(tmp_path / "elsewhere.safetensors"), "default.safetensors"):
        with pytest.raises(ValueError, match="no shipped checkpoint"):
            models.build_model(models.ModelChoice("checkpoint", name))


def test_an_upload_loads_from_its_bytes_keyed_by_content_and_a_bad_one_names_the_file():
    model = tiny_model()
    data = models.checkpoint_bytes(model)
    choice, loaded = models.load_upload("mine.safetensors", data, "cpu")
    assert (choice.kind, choice.name) == ("upload", "mine.safetensors")
    assert choice.key == models.load_upload("mine.safetensors", data, "cpu")[0].key  # keyed by content
    other = models.checkpoint_bytes(tiny_model(seed=1))
    assert models.load_upload("mine.safetensors", other, "cpu")[0].key != choice.key
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(CheckpointError, match=r"^bad\.safetensors"):
        models.load_upload("bad.safetensors", b"not a checkpoint", "cpu")


def test_training_metrics_come_from_the_shipped_file_or_the_checkpoint_metadata(tmp_path, monkeypatch):
    shipped = save_checkpoint(tiny_model(), tmp_path / "shipped.safetensors")
    (tmp_path / "shipped.metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 5.0}\n'
                                                    '{"kind": "train", "step": 2, "loss": 4.0}\n')
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", shipped)
    model = load_checkpoint(shipped)
    assert list(models.training_metrics(model, models.ModelChoice("shipped", "shipped.safetensors", "cpu"))["loss"]) == [5.0, 4.0]
    uploaded = load_checkpoint(save_checkpoint(tiny_model(), tmp_path / "up.safetensors",
                                               {"metrics": [{"kind": "train", "step": 3, "loss": 2.5}]}))
    assert list(models.training_metrics(uploaded, models.ModelChoice("upload", "up", "cpu", "abc"))["loss"]) == [2.5]
    assert models.training_metrics(model, models.ModelChoice("preset", "hope", "cpu")).empty


def test_a_saved_recording_loads_back_by_the_checked_reader(model):
    rec, _ = record(model, "saved for later")
    again = models.load_saved_recording("monday.safetensors", models.recording_bytes(rec))
    assert torch.equal(again.tokens, rec.tokens)
    with pytest.raises(ValueError, match="monday.safetensors"):
        models.load_saved_recording("monday.safetensors", b"not a recording at all")
