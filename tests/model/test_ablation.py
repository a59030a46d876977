"""Ablation switches: each one changes the output; any combination runs; threads don't interfere."""
import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from nested_learning import Ablation
from tests.conftest import random_tokens, tiny_model

TOKENS = random_tokens(1, 40)


def logits(model, ablation):
    with torch.no_grad():
        return model(TOKENS, ablation=ablation).logits


@pytest.mark.parametrize("switch", [s for s in Ablation.SWITCHES if s != "momentum"])
def test_each_switch_changes_the_output(switch):
    model = tiny_model()
    assert not torch.allclose(logits(model, Ablation()), logits(model, Ablation(**{switch: False})))


def test_momentum_switch_changes_the_output():
    model = tiny_model("titans")
    assert not torch.allclose(logits(model, Ablation()), logits(model, Ablation(momentum=False)))


@pytest.mark.parametrize("level", range(4))
def test_each_cms_level_switch_changes_the_output(level):
    model = tiny_model()
    assert not torch.allclose(logits(model, Ablation()), logits(model, Ablation(cms_levels_off=frozenset({level}))))


MAIN = ("attention", "memory", "cms", "ffn", "persistent_tokens", "test_time_updates", "momentum")


@pytest.mark.slow  # 2^7 combinations: about two minutes on 2 CPU cores
@pytest.mark.parametrize("preset", ["hope", "titans"])
def test_every_combination_gives_finite_logits(preset):
    model = tiny_model(preset)
    for values in itertools.product([True, False], repeat=len(MAIN)):
        out = logits(model, Ablation(**dict(zip(MAIN, values))))
        assert out.shape == (1, 40, 256) and torch.isfinite(out).all(), values
    assert torch.isfinite(logits(model, Ablation.all_off())).all()


def test_memory_off_contributes_nothing():
    with_memory, without = tiny_model(), tiny_model(memory=False)
    without.load_state_dict({k: v for k, v in with_memory.state_dict().items() if ".memory." not in k and "norms.memory" not in k})
    assert torch.equal(logits(with_memory, Ablation(memory=False)), logits(without, Ablation()))


def test_threads_with_different_ablations_share_one_model():
    model = tiny_model()
    ablations = [Ablation(), Ablation(memory=False), Ablation(cms=False), Ablation(test_time_updates=False)] * 3
    expected = [logits(model, a) for a in ablations]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda a: logits(model, a), ablations))
    assert all(torch.equal(r, e) for r, e in zip(results, expected))


def test_names_round_trip_and_errors():
    ablation = Ablation.from_names("memory, cms.2,adaptive_lr")
    assert not ablation.memory and not ablation.adaptive_lr and not ablation.cms_level(2) and ablation.cms_level(1)
    assert Ablation.from_names(ablation.names_off()) == ablation
    with pytest.raises(ValueError, match="unknown ablation 'memroy'"):
        Ablation.from_names("memroy")
    with pytest.raises(ValueError, match="cms_levels_off"):
        Ablation(cms_levels_off=frozenset({-1}))
