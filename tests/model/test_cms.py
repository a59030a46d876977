"""CMS cadence: a level with period C updates floor(T/C) times over T tokens, counted across calls."""
import pytest
import torch

from nested_learning import Ablation, ContinuumMemorySystem
from tests.conftest import random_tokens, tiny_model


def cms_model(periods):
    model = tiny_model(cms_periods=periods)
    with torch.no_grad():  # non-zero initial weights so that every update (even a zero write) is visible
        for level in model.blocks[0].cms.levels:
            level.initial_memory.normal_()
    return model


@pytest.mark.parametrize("periods", [(1, 2, 4, 8), (1, 3, 16)])
def test_level_fires_every_period_tokens_across_calls(periods):
    model = cms_model(periods)
    T = 37
    tokens = random_tokens(1, T)
    updates = {i: [] for i in range(len(periods))}
    state = model.init_state(1)
    with torch.no_grad():
        for t in range(T):  # one token per call: the clock must count tokens, not calls
            new = model(tokens[:, t:t + 1], state=state).state
            for i in range(len(periods)):
                if not torch.equal(new.layers[0].cms[i].memory, state.layers[0].cms[i].memory):
                    updates[i].append(t)
            state = new
    for i, period in enumerate(periods):
        assert updates[i] == [t for t in range(T) if (t + 1) % period == 0], (period, updates[i])
        assert len(updates[i]) == T // period


def test_short_sequences_accumulate_and_update_on_time():
    """Calls shorter than a period never update early and never drop their writes."""
    model = cms_model((16,))
    tokens = random_tokens(1, 16)
    with torch.no_grad():
        s0 = model.init_state(1)
        s1 = model(tokens[:, :10], state=s0).state
        level0, level1 = s0.layers[0].cms[0], s1.layers[0].cms[0]
        assert torch.equal(level1.memory, level0.memory)  # frozen inside the block
        assert level1.pending.abs().sum() > 0  # but the writes are kept
        s2 = model(tokens[:, 10:16], state=s1).state
        one_call = model(tokens, state=s0).state
    assert not torch.equal(s2.layers[0].cms[0].memory, level0.memory)
    assert torch.allclose(s2.layers[0].cms[0].memory, one_call.layers[0].cms[0].memory, atol=1e-6)
    assert s2.layers[0].cms[0].pending.abs().sum() == 0


def test_level_switched_off_is_identity_and_keeps_state():
    torch.manual_seed(0)
    cms = ContinuumMemorySystem(16, 8, (1, 4))
    x = torch.randn(1, 12, 16)
    states = cms.init_state(1)
    y_all_off, s_off, _ = cms(x, states, 0, Ablation(cms_levels_off=frozenset({0, 1})))
    assert torch.equal(y_all_off, x)
    assert all(a is b for a, b in zip(s_off, states))
    y_one, s_one, _ = cms(x, states, 0, Ablation(cms_levels_off=frozenset({1})))
    assert s_one[1] is states[1] and s_one[0] is not states[0]


def test_learning_rate_bounded_by_period():
    cms = ContinuumMemorySystem(8, 4, (1, 8, 512))
    with torch.no_grad():
        for level in cms.levels:
            level.lr_logit.fill_(50.0)
    with torch.no_grad():
        rates = [level.learning_rate().item() for level in cms.levels]
    assert rates == pytest.approx([1.0, 1 / 8, 1 / 512])
