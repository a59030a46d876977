import pytest

from nested_learning import ByteTokenizer, HopeConfig, PRESETS


def test_json_round_trip_for_every_preset():
    for name in PRESETS:
        config = HopeConfig.preset(name, attention_window=64)
        assert HopeConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("data, message", [
    ({"d_model": 30, "n_heads": 4}, "divisible by n_heads"),
    ({"n_layers": 0}, "n_layers must be a positive integer"),
    ({"n_layers": True}, "n_layers must be a positive integer"),
    ({"cms_periods": [1, 0]}, "cms_periods"),
    ({"cms_periods": "1,2"}, "list of integers"),
    ({"min_retention": 1.5}, "min_retention"),
    ({"max_learning_rate": 0}, "max_learning_rate"),
    ({"attention": "yes"}, "true or false"),
    ({"warp_drive": 1}, "unknown config field"),
    ({"cms_objective": "lm"}, "cms_objective"),
])
def test_invalid_configs_raise_one_line(data, message):
    with pytest.raises(ValueError, match=message):
        HopeConfig.from_dict(data)


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
