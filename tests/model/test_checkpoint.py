"""Checkpoints: exact round trip; every damaged or foreign file raises one clear CheckpointError."""
import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from nested_learning import PRESETS, CheckpointError, HopeConfig, HopeTransformer, load_checkpoint, save_checkpoint
from nested_learning.checkpoint import read_checkpoint_info
from nested_learning.shapes import parameter_shapes
from tests.conftest import random_tokens, tiny_model
from tests.support.headers import read_header, rewrite_header, with_raw_header


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
    assert model.checkpoint_metadata is None  # declared on the class: a model built here has none
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


def test_file_from_another_config(saved, tmp_path):
    _, path = saved

    def claim_bigger_model(header):
        config = json.loads(header["__metadata__"]["config"])
        config["d_model"] = 64
        header["__metadata__"]["config"] = json.dumps(config)
    expect_error(rewrite_header(path, tmp_path / "other.safetensors", claim_bigger_model), r"has shape \[256, 32\], expected \[256, 64\]")
    other = save_checkpoint(tiny_model(cms_periods=(1, 2)), tmp_path / "fewer_levels.safetensors")
    expect_error(rewrite_header(other, tmp_path / "mixed.safetensors",
                                lambda h: h["__metadata__"].update(config=read_header(path)["__metadata__"]["config"])),
                 "missing tensor 'blocks.0.cms.levels.2")


def test_nan_weights(tmp_path):
    good = save_checkpoint(tiny_model(), tmp_path / "good.safetensors")
    tensors = load_file(good)
    tensors["blocks.1.memory.initial_memory"][0, 0, 0] = float("nan")  # save_checkpoint itself refuses this
    path = tmp_path / "nan.safetensors"
    save_file(tensors, path, metadata=read_header(good)["__metadata__"])
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


def edit_config(**changes):
    def edit(header):
        config = json.loads(header["__metadata__"]["config"])
        header["__metadata__"]["config"] = json.dumps({**config, **changes})
    return edit


def test_malformed_headers_of_any_shape(saved, tmp_path):
    _, path = saved
    cases = {
        "metadata_list": (lambda h: h.update(__metadata__=[1, 2]), "__metadata__ is not a JSON object of strings"),
        "metadata_number_value": (lambda h: h["__metadata__"].update(format=7), "__metadata__ is not a JSON object of strings"),
        "shape_number": (lambda h: h["embed.weight"].update(shape=5), r"tensor 'embed.weight' has a malformed shape 5"),
        "shape_strings": (lambda h: h["embed.weight"].update(shape=["ab", 10**9]), "malformed shape"),
        "shape_negative": (lambda h: h["embed.weight"].update(shape=[-256, -32]), "malformed shape"),
        "dtype_list": (lambda h: h["embed.weight"].update(dtype=["F32"]), r"has dtype \['F32'\], expected F32"),
        "entry_string": (lambda h: h.update({"embed.weight": "x"}), "tensor 'embed.weight' is not a JSON object"),
        "offsets_bool": (lambda h: h["final_norm.weight"].update(data_offsets=[False, True]), "outside the file"),
        "user_metadata_list": (lambda h: h["__metadata__"].update(metadata="[1]"), "metadata is not a JSON object"),
        "config_list": (lambda h: h["__metadata__"].update(config="[]"), "bad config: config must be a JSON object"),
        "config_missing": (lambda h: h["__metadata__"].pop("config"), "bad config: the metadata holds no config"),
        "init_std_negative": (edit_config(init_std=-0.02), r"bad config: config.init_std must be a number in \(0, 1\]"),
        "rope_base_zero": (edit_config(rope_base=0), "bad config: config.rope_base"),
        "cms_periods_number": (edit_config(cms_periods=4), "bad config: config.cms_periods"),
        "shared_bytes": (lambda h: h["final_norm.weight"].update(data_offsets=h["blocks.1.norms.ffn.weight"]["data_offsets"]),
                         "overlaps or leaves gaps"),
    }
    for case, (edit, message) in cases.items():
        expect_error(rewrite_header(path, tmp_path / f"{case}.safetensors", edit), message)


def test_json_limits(saved, tmp_path):
    _, path = saved
    header = read_header(path)
    deep = "[" * 40 + "]" * 40
    for case, raw, message in [
        ("deep", b"[" * 100_000 + b"]" * 100_000, "more than"),
        ("deep40", json.dumps({**header, "__metadata__": {**header["__metadata__"], "metadata": json.dumps({"x": json.loads(deep)})}}).encode(),
         "metadata is nested more than 32 levels deep"),
        ("long_int", b'{"a": ' + b"9" * 5000 + b"}", "header has a number longer than 32 characters"),
        ("containers", b"[" + b"[]," * 300_000 + b"[]]", "header holds more than 262144 JSON objects and arrays"),
        ("not_utf8", b"\xff\xfe{}", "header is not JSON"),
    ]:
        expect_error(with_raw_header(path, tmp_path / f"{case}.safetensors", raw), message)


def _peak_bytes(action) -> int:
    """Peak Python-allocated bytes while ``action`` runs (the regex engine's stacks included)."""
    import tracemalloc
    tracemalloc.start()
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_parsing_a_header_costs_memory_proportional_to_the_file(saved, tmp_path):
    """Issue 29 item 2: an 8 MB JSON string cost ~1 GB in the depth check's regex. Every crafted header, at
    the header's size limit, is refused within 3 times the file's size; within the limits, a header of
    many small values is bounded by the caps on values and containers."""
    _, path = saved
    meta = read_header(path)["__metadata__"]
    size = 8_000_000
    cases = {"one long string": (json.dumps({"__metadata__": {**meta, "metadata": "a" * size}}).encode(),
                                 "header has a string of 8000000 characters, more than 2097152"),
             "one long escaped string": (b'{"x":"' + b'\\"' * (size // 3) + b'"}', "more than 2097152"),
             "many short strings": (b'{"a":[' + b'"ab",' * (size // 5) + b'"ab"]}', "holds more than 262144 JSON values"),
             "many numbers": (b'{"a":[' + b'1.5,' * (size // 4) + b'1]}', "holds more than 262144 JSON values")}
    for case, (raw, message) in cases.items():
        data = len(raw).to_bytes(8, "little") + raw
        def refuse():
            with pytest.raises(CheckpointError, match=message):
                load_checkpoint(data, device="cpu")
        assert _peak_bytes(refuse) < 3 * len(data), case
    containers = b'{"a":[' + b"[]," * 250_000 + b"1]}"  # under the cap: each list kept, ~130 bytes
    data = len(containers).to_bytes(8, "little") + containers
    assert _peak_bytes(lambda: pytest.raises(CheckpointError, load_checkpoint, data)) < 64 << 20


def test_a_long_string_inside_the_metadata_is_refused(saved, tmp_path):
    _, path = saved
    long = rewrite_header(path, tmp_path / "long.safetensors",
                          lambda h: h["__metadata__"].update(metadata=json.dumps({"note": "x" * (3 << 20)})))
    expect_error(long, r"header has a string of \d+ characters, more than 2097152")


def test_huge_claims_are_refused_by_arithmetic_without_building(saved, tmp_path, monkeypatch):
    _, path = saved
    import nested_learning.checkpoint as checkpoint
    monkeypatch.setattr(checkpoint, "HopeTransformer", None)  # any attempt to build a model fails the test
    meta = read_header(path)["__metadata__"]
    # 1000 layers (issue 17: a 716-byte file took 23 s and +168 MB to refuse) is beyond the bounds; the
    # largest config within them fails the key check, which is arithmetic on the config.
    for changes, message in [({"n_layers": 1000}, "config.n_layers must be a positive integer at most 128, got 1000"),
                             ({"n_layers": 128, "d_model": 16384, "n_heads": 256, "vocab_size": 1 << 17,
                               "cms_periods": list(range(1, 17))},
                              r"missing tensor 'blocks.0.attention.out.weight' for this config \(and 10753 more\)")]:
        config = {**json.loads(meta["config"]), **changes}
        raw = json.dumps({"__metadata__": {**meta, "config": json.dumps(config)}}).encode()
        small = tmp_path / "claim.safetensors"
        small.write_bytes(len(raw).to_bytes(8, "little") + raw)  # a header and no tensors: under 1 KB
        assert small.stat().st_size < 1024
        started = time.perf_counter()
        expect_error(small, message)
        with pytest.raises(CheckpointError, match=message):
            read_checkpoint_info(small)
        assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_parameter_shapes_match_real_models(preset):
    """The loaders' shapes (one layer built on the meta device, its fills skipped, its names repeated per
    layer) equal a whole model's, in the same order."""
    variants = [{}, dict(local_conv=1), dict(local_conv=3, momentum=True, self_modifying=False),
                dict(n_persistent_tokens=0, cms_periods=(3,)), dict(attention=False, n_persistent_tokens=0, ffn=True),
                dict(cms_periods=(), memory=False, n_layers=3, vocab_size=300)]
    for changes in variants:
        config = HopeConfig.preset(preset, **changes)
        with torch.device("meta"):
            model = HopeTransformer(config)
        expected = {k: tuple(p.shape) for k, p in model.named_parameters()}
        assert parameter_shapes(config) == expected and list(parameter_shapes(config)) == list(expected), changes


def test_parameter_shapes_of_the_largest_config_cost_no_memory_and_no_compiler():
    """A header may claim the largest config the bounds allow (billions of parameters): its shapes come
    from modules with no storage, and without torch's Python meta kernels (their first use imports the
    compiler stack, seconds), as a fresh process shows."""
    import subprocess
    import sys
    code = ("import sys; from nested_learning import HopeConfig; from nested_learning.config import INT_BOUNDS; "
            "from nested_learning.shapes import parameter_shapes; "
            "largest = {k: high for k, (low, high) in INT_BOUNDS.items()}; "
            "config = HopeConfig.preset('hope', **largest, cms_periods=tuple(range(1, 17)), memory_heads=1); "
            "shapes = parameter_shapes(config); "
            "import json; print(json.dumps([shapes['embed.weight'], len(shapes), "
            "sum(k.startswith('blocks.127.') for k in shapes), 'torch._dynamo' in sys.modules]))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300, cwd=root)
    embed, n_shapes, per_layer, compiler_imported = json.loads(out.stdout)
    assert embed == [131072, 16384] and n_shapes == 128 * per_layer + 2 and not compiler_imported


def test_a_model_with_a_non_finite_parameter_is_not_saved(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        model.final_norm.weight[0] = float("inf")
    path = tmp_path / "m.safetensors"
    with pytest.raises(CheckpointError, match=r"not saved: parameter 'final_norm.weight' has non-finite"):
        save_checkpoint(model, path)
    assert not path.exists()


def test_a_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    """Issue 29 item 6: a full disk while writing left a `.tmp-*.safetensors` beside the target."""
    import errno
    import nested_learning.safe_files as safe_files

    class FullDisk:
        def __init__(self, fd, mode):
            self.file = open(fd, mode)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.file.close()
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safe_files.os, "fdopen", FullDisk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tiny_model(), tmp_path / "model.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_a_degenerate_checkpoint_is_refused_naming_the_tensor(tmp_path):
    """Issue 29 item 4: weights of 1e38 loaded, and every prediction came out uniform or non-finite."""
    model = tiny_model()
    with torch.no_grad():
        model.final_norm.weight.fill_(1e38)
    path = save_checkpoint(model, tmp_path / "huge.safetensors")  # finite: it saves
    expect_error(path, r"tensor 'final_norm.weight' holds 1e\+38: a degenerate model \(values past 1e\+18 overflow")
