"""The shareable view: query parameters parsed, clamped with notices, and written back."""
import pytest

from nested_learning import Ablation, HopeConfig
from nested_learning.viz.view import (MAX_LINK_TEXT, View, ablation_names, clamp_token, decode_text, encode_text,
                                      parse_view, view_to_params)

CONFIG = HopeConfig.preset("hope", n_layers=4, memory_heads=4)  # 4 layers, 4 memory heads, 4 CMS levels
PRESETS = ("phrase", "facts")


def test_defaults_and_round_trip():
    assert parse_view({}, CONFIG, PRESETS) == (View(), [])
    params = {"preset": "facts", "layer": "3", "head": "2", "token": "40", "off": "memory,cms.1"}
    view, notices = parse_view(params, CONFIG, PRESETS)
    assert notices == []
    assert view == View("facts", 3, 2, 40, ("memory", "cms.1"))
    assert view_to_params(view) == params
    ablation = Ablation.from_names(list(view.off))  # what the Explore page runs with
    assert ablation.memory is False and ablation.cms_levels_off == {1}



def test_figure_settings_travel_in_the_link_and_defaults_stay_out():
    params = {"preset": "phrase", "heads": "all", "cms": "change", "probe": "cosine"}
    view, notices = parse_view(params, CONFIG, PRESETS)
    assert notices == [] and (view.all_heads, view.cms_change, view.probe_cosine) == (True, True, True)
    assert view_to_params(view) == params
    defaults, _ = parse_view({"preset": "phrase", "heads": "mean", "cms": "weights", "probe": "specific"}, CONFIG, PRESETS)
    assert defaults == View("phrase") and view_to_params(defaults) == {"preset": "phrase"}
    bad, notices = parse_view({"heads": "some<b>"}, CONFIG, PRESETS)
    assert bad == View() and notices == ["heads=some\\<b\\> is not a setting (mean or all): ignored."]


@pytest.mark.parametrize("params, expected, fragment", [
    ({"layer": "abc"}, View(layer=0), "layer=abc is not a whole number"),
    ({"layer": "99"}, View(layer=3), "out of range (0..3): using 3"),
    ({"head": "-3"}, View(head=0), "using 0"),
    ({"token": "-5"}, View(token=0), "token=-5"),
    ({"token": "1e9x"}, View(token=None), "using the last token"),
    ({"preset": "nope"}, View(), "preset=nope is not a preset"),
    ({"off": "bogus"}, View(), "off=bogus is not a component"),
    ({"off": "cms.9"}, View(), "off=cms\\.9"),
    ({"layer": ""}, View(layer=0), "not a whole number"),
    ({"layr": "2"}, View(), "Unknown link parameter layr: ignored (a link takes preset, text, b, layer"),
    ({f"k{i}": "1" for i in range(8)}, View(), "parameters k0, k1, k2, k3, k4 and 3 more: ignored"),
    ({"embed": "true", "<b>": "1"}, View(), "parameter \\<b\\>: ignored"),  # Streamlit's own keys pass
    ({"b": "preset:nope"}, View(), "b=preset\\:nope is not a choice for B"),
])
def test_garbage_is_clamped_or_ignored_with_a_notice(params, expected, fragment):
    view, notices = parse_view(params, CONFIG, PRESETS)
    assert view == expected
    assert len(notices) == 1 and fragment in notices[0]


def test_notices_never_carry_markup():
    view, notices = parse_view({"preset": "<script>alert(1)</script>", "layer": "**9**"}, CONFIG, PRESETS)
    assert view == View()
    assert len(notices) == 2
    for notice in notices:  # every Markdown/HTML character of the user's value arrives backslash-escaped
        for ch in "<>*":
            assert notice.count(ch) == notice.count("\\" + ch), notice
    assert "\\<script\\>alert\\(1\\)" in notices[0] and "\\*\\*9\\*\\*" in notices[1]


def test_repeated_and_duplicate_values():
    view, notices = parse_view({"layer": ["1", "2"], "off": "ffn, memory,memory,,"}, CONFIG, PRESETS)
    assert view.layer == 2  # the last value wins, as in st.query_params
    assert view.off == ("memory", "ffn")  # canonical order, duplicates dropped
    assert notices == []


def test_ablations_follow_the_model():
    transformer = HopeConfig.preset("transformer")
    names = ablation_names(transformer)
    assert "memory" not in names and "cms" not in names and "attention" in names
    view, notices = parse_view({"off": "memory,attention"}, transformer, PRESETS)
    assert view.off == ("attention",) and "memory" in notices[0]
    assert "momentum" in ablation_names(HopeConfig.preset("titans"))
    assert "momentum" not in ablation_names(CONFIG)


def test_clamp_token():
    assert clamp_token(View(token=5), 10) == (View(token=5), None)
    view, notice = clamp_token(View(token=500), 10)
    assert view.token == 9 and "past the end" in notice
    assert clamp_token(View(), 10) == (View(), None)


def test_typed_text_travels_in_the_link_compressed_and_wins_over_a_preset():
    text = "Alice met Bob at noon. Alice met Bob at noon. \U0001F600 <b>"
    params = view_to_params(View(preset="facts", token=44, text=text))
    assert "preset" not in params and params["token"] == "44"
    view, notices = parse_view({**params, "preset": "facts"}, CONFIG, PRESETS)
    assert notices == [] and view.text == text and view.preset is None
    prose = "the quiet river bends past the old mill. " * 48  # 1,968 bytes of repetitive prose
    assert decode_text(encode_text(prose)) == prose and len(encode_text(prose)) < 200


def test_every_text_of_one_run_fits_in_a_link_and_a_longer_one_is_left_out():
    import random
    rng = random.Random(0)
    worst = bytes(rng.randrange(256) for _ in range(2048)).decode("latin-1").encode("utf-8")[:2048].decode("utf-8", "ignore")
    cjk = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(682))  # 2,046 bytes, incompressible
    for text in (worst, cjk):
        assert decode_text(encode_text(text)) == text
    assert encode_text("x" * 2049) is None  # more than one run
    assert "text" not in view_to_params(View(text="x" * 2049))


@pytest.mark.parametrize("value, fragment", [
    ("!!!", "not an encoded text"),
    ("aGVsbG8", "not an encoded text"),  # base64 of "hello": not zlib
    ("x" * 3000, "longer than 2800"),
])
def test_garbage_text_in_a_link_is_ignored_with_a_notice(value, fragment):
    view, notices = parse_view({"text": value, "preset": "facts"}, CONFIG, PRESETS)
    assert view.text is None and view.preset == "facts" and fragment in notices[0]


def test_a_compressed_bomb_is_refused_without_inflating_it():
    import base64
    import zlib
    bomb = base64.urlsafe_b64encode(zlib.compress(b"a" * 1_000_000, 9)).decode().rstrip("=")
    assert len(bomb) < MAX_LINK_TEXT
    with pytest.raises(ValueError, match="longer than 2048 bytes once decoded"):
        decode_text(bomb)


def test_every_switch_has_a_glossary_line():
    from nested_learning.viz.view import glossary
    for name in ablation_names(CONFIG):
        assert glossary(name), name


def test_a_text_too_long_once_decoded_reads_as_a_sentence():
    """Issue 29 item 7: the notice read "text= is decodes to more than 2048 bytes"."""
    import base64
    import zlib
    value = base64.urlsafe_b64encode(zlib.compress(b"a" * 5000, 9)).decode().rstrip("=")
    _, notices = parse_view({"text": value}, HopeConfig.preset("hope", n_layers=2), ("phrase",))
    assert notices == ["text= is longer than 2048 bytes once decoded: ignored."]


def test_two_thousand_unknown_keys_get_one_notice():
    params = {f"key{i}": "1" for i in range(2000)}
    _, notices = parse_view(params, HopeConfig.preset("hope", n_layers=2), ("phrase",))
    assert len(notices) == 1 and notices[0].startswith("Unknown link parameters key0, key1, key2, key3, key4 and 1995 more")
