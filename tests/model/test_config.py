import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nested_learning import ByteTokenizer, HopeConfig, HopeTransformer, PRESETS
from nested_learning.config import FLOAT_BOUNDS, INT_BOUNDS
from nested_learning.shapes import parameter_shapes


def test_json_round_trip_for_every_preset():
    for name in PRESETS:
        config = HopeConfig.preset(name, attention_window=64)
        assert HopeConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("data, message", [
    ({"d_model": 30, "n_heads": 4}, "divisible by n_heads"),
    ({"n_layers": 0}, "n_layers must be a positive integer at most 128, got 0"),
    ({"n_layers": True}, "n_layers must be a positive integer"),
    ({"n_layers": 1000}, "n_layers must be a positive integer at most 128, got 1000"),
    ({"local_conv": -1}, r"local_conv must be an integer in \[0, 256\], got -1"),
    ({"d_model": 6, "n_heads": 2}, "must be even with attention"),
    ({"cms_periods": [1, 0]}, "cms_periods"),
    ({"cms_periods": [1] * 17}, "at most 16"),
    ({"cms_periods": [1, 1 << 21]}, "cms_periods"),
    ({"cms_periods": "1,2"}, "list of integers"),
    ({"memory_heads": 0}, "memory_heads must be None or a positive integer"),
    ({"d_model": 32, "memory_heads": 3}, "divisible by memory_heads"),
    ({"shifted_keys": 1}, "shifted_keys must be true or false"),
    ({"key_expansion": 3}, "key_expansion must be 1 .no feature map. or even"),
    ({"key_expansion": 0}, "key_expansion must be a positive integer"),
    ({"attention_window": 0}, "attention_window must be None or a positive integer at most 1048576, got 0"),
    ({"attention_window": 1 << 30}, "attention_window"),
    ({"momentum": True, "max_momentum": 0.0}, "max_momentum must be above 0 with momentum on"),
    ({"min_retention": 1.5}, "min_retention"),
    ({"max_learning_rate": 0}, "max_learning_rate"),
    ({"rope_base": float("nan")}, r"rope_base must be a number in \(1, 1e\+12\], got nan"),
    ({"rope_base": 0}, "rope_base"),
    ({"init_std": -0.02}, r"init_std must be a number in \(0, 1\]"),
    ({"init_std": float("inf")}, "init_std"),
    ({"attention": "yes"}, "true or false"),
    ({"warp_drive": 1}, "unknown config field"),
    ({"cms_objective": "task"}, "cms_objective must be 'local' or 'lm'"),
    ({"cms_objective": "x\ny" * 50}, "cms_objective"),
])
def test_invalid_configs_raise_one_line(data, message):
    with pytest.raises(ValueError, match=message) as info:
        HopeConfig.from_dict(data)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_every_bound_is_enforced_at_both_ends():
    for name, (low, high) in INT_BOUNDS.items():
        for bad in (low - 1, high + 1, 2.0, "3", None):
            with pytest.raises(ValueError, match=f"config.{name} must be (a positive|an) integer"):
                HopeConfig.preset("hope", **{name: bad})
    for name, (low, high, _, _) in FLOAT_BOUNDS.items():
        for bad in (low - 1, high + 1, math.nan, math.inf, -math.inf, "0.5", True):
            with pytest.raises(ValueError, match=f"config.{name} must be a number"):
                HopeConfig.preset("hope", **{name: bad})
    for name in ("attention", "memory", "self_modifying", "momentum", "ffn"):
        with pytest.raises(ValueError, match=f"config.{name} must be true or false"):
            HopeConfig.preset("hope", **{name: 1})


def test_bounds_admit_large_real_models():
    HopeConfig.preset("hope", n_layers=128, d_model=8192, n_heads=64, vocab_size=1 << 17, attention_window=None,
                      cms_periods=tuple(2 ** i for i in range(16)), rope_base=5e5, init_std=1.0, local_conv=4)


@st.composite
def small_configs(draw):
    """Any combination of switches, with small sizes and values at the edges of the float bounds."""
    heads = draw(st.sampled_from([1, 2, 4]))
    edge = lambda *values: st.sampled_from(values)
    return dict(d_model=heads * draw(edge(1, 2, 4, 6)), n_heads=heads, n_layers=draw(st.integers(1, 2)),
                vocab_size=draw(st.integers(1, 300)), attention=draw(st.booleans()), memory=draw(st.booleans()),
                self_modifying=draw(st.booleans()), momentum=draw(st.booleans()), ffn=draw(st.booleans()),
                attention_window=draw(st.none() | st.integers(1, 10)), n_persistent_tokens=draw(st.integers(0, 3)),
                rope_base=draw(edge(1.0001, 1e4, 1e12)), projection_hidden=draw(st.integers(1, 4)),
                projection_learning_rate=draw(edge(0.0, 0.5, 1.0)), memory_chunk_size=draw(st.integers(1, 9)),
                max_learning_rate=draw(edge(1e-9, 1.0)), min_retention=draw(edge(1e-9, 1.0)),
                max_momentum=draw(edge(0.0, 0.5, 0.999)), local_conv=draw(st.integers(0, 5)),
                cms_periods=tuple(draw(st.lists(st.integers(1, 9), max_size=3))), cms_hidden=draw(st.integers(1, 4)),
                ffn_mult=draw(st.integers(1, 3)), init_std=draw(edge(1e-9, 0.02, 1.0)),
                memory_depth=draw(st.integers(1, 2)))


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_configs(), st.integers(0, 12))
def test_every_accepted_config_builds_and_runs(fields, length):
    """What the bounds accept builds, matches the loaders' meta-device shapes, and runs (also continued)."""
    try:
        config = HopeConfig(**fields)
    except ValueError as e:
        assert "\n" not in str(e)
        return
    model = HopeTransformer(config).eval()
    assert parameter_shapes(config) == {k: tuple(p.shape) for k, p in model.named_parameters()}
    tokens = torch.randint(0, config.vocab_size, (1, length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        state = model(tokens[:, :length // 2]).state
        if config.attention or config.memory or config.cms_periods:  # a stateless model's state has no batch size
            model(tokens[:, length // 2:], state=state)


def test_any_period_list_is_allowed():
    assert HopeConfig.preset("hope", cms_periods=(1, 16, 256)).cms_periods == (1, 16, 256)


def test_byte_tokenizer_handles_any_text():
    tok = ByteTokenizer()
    text = "héllo 👋\n\x00"
    ids = tok.encode(text)
    assert all(0 <= i < 256 for i in ids) and tok.decode(ids) == text
    assert tok.decode([0xff, 0x41]) == "\ufffdA"  # invalid UTF-8 is replaced, never raises
    assert tok.token_label(10) == "\\n" and tok.token_label(65) == "A" and tok.token_label(200) == "\\xc8"
    assert tok.encode_tensor("ab").shape == (1, 2)
