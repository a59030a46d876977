"""The stream table (recording/streams.py) is the contract: the recorder's output, the file reader and the
docs' table must all agree with it. Recorded on models whose key width differs from the value width
(the shipped ``hope`` preset's: one 128-wide head, keys 1,024 wide), so a shape that confuses the two fails."""
import dataclasses
import re
from pathlib import Path

import pytest
import torch

from nested_learning import HopeConfig, HopeTransformer
from nested_learning.recording import Recording, RecordingError, record, streams
from nested_learning.shapes import cms_parameter_shapes
from tests.conftest import random_tokens, tiny_model
from tests.support.keys import traced_keys, with_stored_keys, with_stored_writes

DOCS = Path(__file__).resolve().parents[2] / "docs" / "recording.md"
DTYPES = {"int64": torch.int64, "float32": torch.float32, "float16": torch.float16}


@pytest.fixture(scope="module")
def recordings() -> list[Recording]:
    """The shipped configuration (random weights) with attention and every M_t, a tiny momentum model
    with CMS and every M_t, a file that holds the keys and writes themselves, a 2-layer memory with every
    W1 and W2 (with momentum) and CMS levels learning from the loss: together every row of the table."""
    torch.manual_seed(0)
    shipped = HopeTransformer(HopeConfig.preset("hope")).eval()
    tokens = random_tokens(1, 9)[0]
    hope, _ = record(shipped, tokens, attention=True, full_states=True, top_k=3)
    momentum_model = tiny_model("hope-paper", key_expansion=2)
    momentum, _ = record(momentum_model, tokens, full_states=True)
    stored_keys = with_stored_writes(with_stored_keys(momentum, traced_keys(momentum_model, tokens)))
    deep, _ = record(tiny_model("hope", memory_depth=2, key_expansion=2, momentum=True), tokens,
                     full_states=True)  # W1 and W2, and their momenta
    lm, _ = record(tiny_model("hope", key_expansion=2, cms_objective="lm", cms_periods=[2, 4]), tokens)  # lm updates
    return [hope, momentum, stored_keys, deep, lm]


def expected_shape(recording: Recording, name: str):
    """The table's row for ``name`` and the shape it gives for the recording's config and length."""
    stream, index = streams.find(name)
    param = cms_parameter_shapes(recording.config)[index["param"]] if "param" in index else None
    return stream, stream.shape_for(recording.config, recording.n_tokens, param)


def test_the_shipped_configuration_has_keys_wider_than_values():
    config = HopeConfig.preset("hope")
    assert (config.n_memory_heads, config.memory_head_dim, config.memory_key_dim) == (1, 128, 1024)
    initial = streams.find("layers.0.memory.initial.memory")[0].shape_for(config, 5)
    assert initial == tuple(HopeTransformer(config).blocks[0].memory.initial_memory.shape) == (1, 128, 1024)


def test_every_recorded_tensor_has_the_tables_shape_and_dtype(recordings):
    for recording in recordings:
        assert recording.config.memory_key_dim != recording.config.memory_head_dim
        for name, tensor in recording.tensors.items():
            assert streams.find(name) is not None, f"{name} is not in the stream table"
            stream, shape = expected_shape(recording, name)
            assert len(tensor.shape) == len(shape) and all(s is None or s == f for s, f in zip(shape, tensor.shape)), \
                (name, tuple(tensor.shape), shape)
            assert tensor.dtype == DTYPES[stream.dtype], (name, tensor.dtype, stream.dtype)


def test_every_row_of_the_table_is_recorded_somewhere(recordings):
    rows = {streams.find(name)[0].name for recording in recordings for name in recording.tensors}
    assert rows == {stream.name for stream in streams.STREAMS}


def test_the_file_reader_takes_its_shapes_from_the_table(recordings, tmp_path):
    """Saved as recorded, every file loads; a tensor of each row made one longer along its first fixed
    dimension is refused by name (taken from the smallest recording that holds the row)."""
    for r, recording in enumerate(recordings):
        assert Recording.load(recording.save(tmp_path / f"{r}.safetensors")).tensors.keys() == recording.tensors.keys()
    checked = set()
    for recording in sorted(recordings, key=lambda r: sum(t.numel() for t in r.tensors.values())):
        for name, tensor in recording.tensors.items():
            stream, shape = expected_shape(recording, name)
            if stream.name in checked or name == "tokens" or all(s is None for s in shape):
                continue  # tokens set T itself; a scalar parameter has no dimension to grow
            checked.add(stream.name)
            axis = next(i for i, s in enumerate(shape) if s is not None)
            grown = torch.cat([torch.zeros_like(tensor.narrow(axis, 0, 1)), tensor], dim=axis)  # the loss keeps its NaN last
            bad = dataclasses.replace(recording, tensors={**recording.tensors, name: grown})
            with pytest.raises(RecordingError, match=re.escape(f"tensor '{name}' has shape")):
                Recording.load(bad.save(tmp_path / "bad.safetensors"))
    assert len(checked) == len(streams.STREAMS) - 2  # all but tokens and an lm level's update tokens (below)
    lm = recordings[-1]  # its update tokens have no fixed length: their count must be the weights'
    name = "layers.1.cms.updates.0.tokens"
    more = torch.cat([torch.zeros(1, dtype=torch.long), lm.tensors[name]])
    with pytest.raises(RecordingError, match="must count the same updates"):
        Recording.load(dataclasses.replace(lm, tensors={**lm.tensors, name: more}).save(tmp_path / "bad.safetensors"))


def test_names_outside_the_table_or_the_config_are_refused(recordings, tmp_path):
    recording = recordings[1]
    layers, levels = recording.config.n_layers, len(recording.config.cms_periods)
    for name, like in ((f"layers.{layers}.memory.surprise", "layers.0.memory.surprise"),
                       (f"layers.0.cms.initial.{levels}.memory", "layers.0.cms.initial.0.memory"),
                       ("layers.0.cms.params.levels.0.unknown", "layers.0.cms.params.levels.0.lr_logit"),
                       ("layers.00.memory.surprise", "layers.0.memory.surprise"),
                       ("layers.0.memory.surprises", "layers.0.memory.surprise")):
        bad = dataclasses.replace(recording, tensors={**recording.tensors, name: recording.tensors[like].clone()})
        with pytest.raises(RecordingError, match="unexpected tensor"):
            Recording.load(bad.save(tmp_path / "bad.safetensors"))


def test_the_docs_table_is_the_one_the_code_renders():
    text = DOCS.read_text(encoding="utf-8")
    assert streams.with_table(text) == text, ("docs/recording.md's stream table is stale: run python -c "
                                              "\"from nested_learning.recording.streams import write_table; write_table()\"")
    for stream in streams.STREAMS:
        assert f"| `{stream.name}` |" in text


def test_the_docs_table_shows_the_shipped_shapes():
    rows = {line.split(" | ")[0].strip("| `"): line.split(" | ") for line in streams.markdown_table().splitlines()
            if line.startswith("| `")}
    assert rows["layers.{i}.memory.keys"][1:3] == ["[T, H, dk]", "[T, 1, 1,024]"]
    assert rows["layers.{i}.memory.unit_keys"][1:3] == ["[T, H, d]", "[T, 1, 128]"]
    assert rows["layers.{i}.memory.initial.memory"][1:3] == ["[H, d, m]", "[1, 128, 1,024]"]  # m = dk at depth 1
    assert rows["full.layers.{i}.memory.memory"][1:3] == ["[T, H, d, m]", "[T, 1, 128, 1,024]"]


def test_write_table_rewrites_only_between_the_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"before\n{streams.BEGIN}\nstale\n{streams.END}\nafter\n", encoding="utf-8")
    assert streams.write_table(str(page))
    assert page.read_text() == f"before\n{streams.BEGIN}\n{streams.markdown_table()}\n{streams.END}\nafter\n"
    assert not streams.write_table(str(page))
