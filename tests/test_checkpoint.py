"""Checkpoints: exact round trip; every damaged or foreign file raises one clear CheckpointError."""
import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from nested_learning import CheckpointError, load_checkpoint, save_checkpoint
from nested_learning.checkpoint import read_checkpoint_info
from tests.conftest import random_tokens, tiny_model


@pytest.fixture
def saved(tmp_path):
    model = tiny_model()
    path = save_checkpoint(model, tmp_path / "model.safetensors", metadata={"note": "test", "steps": 3})
    return model, path


def test_round_trip_is_exact(saved):
    model, path = saved
    loaded = load_checkpoint(path, device="cpu")
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.lm_head.weight is loaded.embed.weight  # tie survives
    tokens = random_tokens(1, 20)
    with torch.no_grad():
        assert torch.equal(model(tokens).logits, loaded(tokens).logits)
    assert loaded.checkpoint_metadata == {"note": "test", "steps": 3}
    assert read_checkpoint_info(path)[0] == model.config
    assert torch.equal(load_checkpoint(path.read_bytes(), device="cpu").embed.weight, model.embed.weight)


def expect_error(path, pattern):
    with pytest.raises(CheckpointError, match=pattern) as info:
        load_checkpoint(path, device="cpu")
    assert "\n" not in str(info.value)


def test_truncated_file(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        expect_error(bad, "truncated or damaged")
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(data[:5])
    expect_error(tiny, "not a safetensors file")


def test_random_bytes(tmp_path):
    path = tmp_path / "random.safetensors"
    path.write_bytes(torch.randint(0, 256, (5000,), generator=torch.Generator().manual_seed(0)).to(torch.uint8).numpy().tobytes())
    expect_error(path, "not a safetensors file")


def test_pickle_renamed_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save(tiny_model().state_dict(), path)  # a pickle archive: must never be loaded
    expect_error(path, "not a safetensors file")


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, path, metadata={"format": "pt"})
    expect_error(path, "not a nested_learning checkpoint")


def rewrite_header(path, out, edit):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    out.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
    return out


def test_file_from_another_config(saved, tmp_path):
    _, path = saved

    def claim_bigger_model(header):
        config = json.loads(header["__metadata__"]["config"])
        config["d_model"] = 64
        header["__metadata__"]["config"] = json.dumps(config)
    expect_error(rewrite_header(path, tmp_path / "other.safetensors", claim_bigger_model), r"has shape \[256, 32\], expected \[256, 64\]")
    other = save_checkpoint(tiny_model(cms_periods=(1, 2)), tmp_path / "fewer_levels.safetensors")
    expect_error(rewrite_header(other, tmp_path / "mixed.safetensors",
                                lambda h: h["__metadata__"].update(config=json.loads(path.read_bytes()[8:8 + struct.unpack("<Q", path.read_bytes()[:8])[0]])["__metadata__"]["config"])),
                 "missing tensor 'blocks.0.cms.levels.2")


def test_nan_weights(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        model.blocks[1].memory.initial_memory[0, 0, 0] = float("nan")
    path = save_checkpoint(model, tmp_path / "nan.safetensors")
    expect_error(path, "tensor 'blocks.1.memory.initial_memory' has non-finite values")


def test_bad_config_and_version(saved, tmp_path):
    _, path = saved
    expect_error(rewrite_header(path, tmp_path / "v9.safetensors", lambda h: h["__metadata__"].update(format_version="9")),
                 "unsupported checkpoint format_version '9'")

    def bad_config(header):
        config = json.loads(header["__metadata__"]["config"])
        config["n_heads"] = 5
        header["__metadata__"]["config"] = json.dumps(config)
    expect_error(rewrite_header(path, tmp_path / "heads.safetensors", bad_config), "bad config: config.d_model")
    expect_error(rewrite_header(path, tmp_path / "dtype.safetensors",
                                lambda h: h["embed.weight"].update(dtype="F16")), "tensor 'embed.weight' has dtype F16, expected F32")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.safetensors", "no such file")
