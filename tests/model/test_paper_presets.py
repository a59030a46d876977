"""The paper-size presets have the paper's parameter counts (340 M, 760 M, 1.3 B at its 32 K vocabulary),
counted on the meta device: no memory is allocated, so the check is cheap."""
import pytest
import torch

from nested_learning import HopeConfig, HopeTransformer
from nested_learning.config import PAPER_PRESETS, PRESETS

PAPER_SIZES = {"hope-paper-340m": 340e6, "hope-paper-760m": 760e6, "hope-paper-1.3b": 1.3e9}


def parameter_count(config: HopeConfig) -> int:
    with torch.device("meta"):
        model = HopeTransformer(config)
    return sum(p.numel() for p in model.parameters())  # the tied embedding / lm head once


@pytest.mark.parametrize("name", PAPER_SIZES)
def test_paper_presets_match_the_papers_sizes(name):
    config = HopeConfig.preset(name)
    assert config.vocab_size == 32000 and config.cms_objective == "lm"
    assert abs(parameter_count(config) / PAPER_SIZES[name] - 1) < 0.10


def test_paper_presets_are_hope_paper_scaled_and_off_the_dashboard_list():
    assert set(PAPER_PRESETS) == set(PAPER_SIZES) and not set(PAPER_PRESETS) & set(PRESETS)
    base = HopeConfig.preset("hope-paper")
    for name in PAPER_PRESETS:
        config = HopeConfig.preset(name)
        assert (config.attention, config.ffn, config.memory, config.momentum, config.local_conv) == (
            base.attention, base.ffn, base.memory, base.momentum, base.local_conv)
        assert config.cms_periods == (16, 128, 1024)
    assert HopeConfig.preset("hope-paper-340m", vocab_size=256).vocab_size == 256  # the byte-level pipeline's size
