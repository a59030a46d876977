"""Explicit state: memory learns at inference, parameters never change, streaming, isolation, causality."""
import pytest
import torch

from nested_learning import Ablation, HopeConfig, PRESETS
from tests.conftest import random_tokens, tiny_model
from tests.support.streaming import assert_calls_equal_one_call


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_memory_changes_at_inference_and_parameters_stay_bit_identical(model):
    before = snapshot(model)
    start = model.init_state(1)
    with torch.no_grad():
        out = model(random_tokens(1, 40), state=start)
    changed = [name for name, t in out.state.tensors().items()
               if name.endswith((".memory.memory", "projections.w_in", "cms.0.memory", "cms.3.memory"))
               and not torch.equal(t, start.tensors()[name])]
    assert len(changed) == 2 * 4, changed  # every layer: main memory, projections, fastest and slowest CMS level
    after = snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training


def test_inference_mode_still_updates(model):
    with torch.inference_mode():
        out = model(random_tokens(1, 16))
    initial = model.init_state(1).tensors()
    assert not torch.equal(out.state.tensors()["layers.0.memory.memory"], initial["layers.0.memory.memory"])


def test_no_grad_call_returns_normal_tensors_equal_to_a_grad_call(model):
    """Under no_grad the forward runs internally in inference_mode (faster) and copies its results
    out: they must equal a grad-enabled call's bit for bit and stay ordinary tensors, which the caller
    may modify in place and hand to a training call (inference tensors allow neither)."""
    tokens = random_tokens(2, 40)
    with torch.no_grad():
        fast = model(tokens)
    reference = model(tokens)
    assert torch.equal(fast.logits, reference.logits.detach())
    for name, t in fast.state.tensors().items():
        assert not t.is_inference(), name
        assert torch.equal(t, reference.state.tensors()[name].detach()), name
    fast.logits.div_(2.0)  # in place, as sampling code does (fails on an inference tensor)
    model.train()
    loss = model(random_tokens(2, 8, seed=1), state=fast.state).logits.square().mean()
    loss.backward()  # the no_grad state seeds a training call
    assert model.embed.weight.grad is not None and torch.isfinite(model.embed.weight.grad).all()


def test_updates_off_keeps_memory_at_initial_state(model):
    start = model.init_state(1)
    with torch.no_grad():
        out = model(random_tokens(1, 40), state=start, ablation=Ablation(test_time_updates=False))
    for name, t in start.tensors().items():
        if "attention" not in name and not name.endswith(("conv", "previous_query")):  # input caches advance
            assert torch.equal(out.state.tensors()[name], t), name


def test_state_never_aliases_parameters(model):
    """Writing to a returned state in place must not reach the learned initial memory."""
    before = snapshot(model)
    with torch.no_grad():
        for state in (model.init_state(1), model(random_tokens(1, 20), ablation=Ablation(test_time_updates=False)).state):
            for t in state.tensors().values():
                t.add_(1)
    after = snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_state_holds_no_view_of_a_larger_buffer(preset):
    """A state tensor that is a slice of a per-call buffer (the conv history of the projected inputs,
    the CMS's last input, the attention window) would keep that whole buffer alive with the state:
    a dashboard keeping states per token would hold megabytes per layer instead of kilobytes."""
    model = tiny_model(preset, attention_window=12)
    state = model(random_tokens(2, 40)).state  # grad enabled: the no_grad path copies its state out anyway
    for name, t in state.tensors().items():
        assert t.untyped_storage().nbytes() <= t.numel() * t.element_size(), name


@pytest.mark.parametrize("preset", list(PRESETS))
def test_streaming_equals_one_call(preset):
    """One call over T tokens equals several calls with the state carried; CMS partial blocks,
    memory chunks, conv history and the attention window all cross the call boundaries."""
    overrides = dict(cms_periods=(1, 3, 8)) if preset not in ("titans", "transformer") else {}
    model = tiny_model(preset, dtype=torch.float64, attention_window=12, **overrides)
    assert_calls_equal_one_call(model, random_tokens(2, 67), atol=1e-5)


def test_streaming_token_by_token_fp32(model):
    """Token-by-token calls run every kernel in its one-token (per-token oracle) form."""
    tokens = random_tokens(1, 30)
    with torch.no_grad():
        full = model(tokens)
        state, pieces = None, []
        for t in range(30):
            out = model(tokens[:, t:t + 1], state=state)
            state = out.state
            pieces.append(out.logits)
    stepped = torch.cat(pieces, 1)
    assert ((stepped - full.logits).norm() / full.logits.norm()) < 1e-4


def test_batch_isolation(model):
    tokens = random_tokens(2, 50)
    other = tokens.clone()
    other[1] = random_tokens(1, 50, seed=9)[0]
    with torch.no_grad():
        a, b = model(tokens), model(other)
    assert torch.equal(a.logits[0], b.logits[0])
    assert not torch.allclose(a.logits[1], b.logits[1])
    for name, t in a.state.tensors().items():
        if t.dim() and t.shape[0] == 2:
            assert torch.equal(t[0], b.state.tensors()[name][0]), name


@pytest.mark.parametrize("preset", ["hope", "hope-paper"])
def test_causality(preset):
    model = tiny_model(preset)
    tokens = random_tokens(1, 40)
    changed = tokens.clone()
    changed[0, 25:] = random_tokens(1, 15, seed=5)
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert torch.equal(a.logits[:, :25], b.logits[:, :25])
    assert not torch.allclose(a.logits[:, 25:], b.logits[:, 25:])


def test_bad_inputs_raise_one_line_errors(model):
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 256\)"):
        model(torch.tensor([[1, 300]]))
    with pytest.raises(ValueError, match="integer ids"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="state holds 1 sequences but tokens hold 2"):
        model(random_tokens(2, 4), state=model.init_state(1))
    with pytest.raises(ValueError, match="batch_size"):
        model.init_state(0)


def test_empty_input_keeps_state(model):
    state = model.init_state(1)
    out = model(torch.zeros(1, 0, dtype=torch.long), state=state)
    assert out.logits.shape == (1, 0, 256) and out.state.position == 0


def test_long_sequence_stays_finite():
    model = tiny_model("hope-paper")
    with torch.no_grad():
        out = model(random_tokens(1, 1500))
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(t).all() for t in out.state.tensors().values())


def test_default_presets_build():
    for name in PRESETS:
        config = HopeConfig.preset(name)
        assert config.d_model == 128 and config.n_layers == 2 and config.attention_window == 16
    assert not HopeConfig.preset("transformer").memory and HopeConfig.preset("titans").momentum
    with pytest.raises(ValueError, match="unknown preset"):
        HopeConfig.preset("gpt5")


def test_a_model_with_no_stateful_part_streams_any_batch():
    """No attention, memory or CMS: the state is only a position, and a stream continues from it."""
    model = tiny_model(attention=False, memory=False, cms_periods=())
    tokens = random_tokens(2, 8)
    first = model(tokens[:, :5])
    assert first.state.batch_size is None
    second = model(tokens[:, 5:], state=first.state)
    torch.testing.assert_close(second.logits, model(tokens).logits[:, 5:])
    assert second.state.position == 8


def _at_largest_momentum(model):
    """Every memory's learning rate and momentum gate pushed to their largest values."""
    H = model.config.n_memory_heads
    with torch.no_grad():
        for block in model.blocks:
            block.memory.gates.bias[:H] = 10.0
            block.memory.gates.bias[2 * H:] = 10.0
    return model


def _read_one_byte_repeated(model, calls: int = 8, length: int = 512):
    state = model.init_state(1)
    with torch.no_grad():
        for _ in range(calls):
            out = model(torch.full((1, length), ord("x")), state=state)
            state = out.state
    return out.logits, [layer.memory for layer in state.layers]


@pytest.mark.parametrize("depth", [1, 2])
def test_momentum_at_its_largest_stays_finite_on_one_byte_repeated(depth):
    """A repeated byte gives every token of a chunk the same key and gradient. Damped (the default), each
    step enters the momentum times 1 - beta and the memory stays finite over 4,096 tokens; undamped (how the
    Titans equations read) the linear memory's chunk moves 1 / (1 - beta) times too far and diverges."""
    logits, memories = _read_one_byte_repeated(_at_largest_momentum(tiny_model("titans", memory_depth=depth)))
    assert torch.isfinite(logits).all()
    for memory in memories:
        for matrix in (memory.memory, memory.momentum, memory.hidden_memory, memory.hidden_momentum):
            assert matrix is None or (torch.isfinite(matrix).all() and matrix.abs().max() < 100)
    undamped, _ = _read_one_byte_repeated(_at_largest_momentum(tiny_model("titans", momentum_dampening=False)))
    assert not torch.isfinite(undamped).all()


def test_a_saved_momentum_config_without_dampening_reads_as_trained():
    """Files saved before dampening existed were trained undamped: they load undamped; a new config is damped."""
    saved = HopeConfig.preset("titans").to_dict()
    del saved["momentum_dampening"]
    assert not HopeConfig.from_saved(saved).momentum_dampening
    assert HopeConfig.from_dict(saved).momentum_dampening and HopeConfig.preset("titans").momentum_dampening
    no_momentum = {k: v for k, v in HopeConfig.preset("hope").to_dict().items() if k != "momentum_dampening"}
    assert HopeConfig.from_saved(no_momentum) == HopeConfig.preset("hope")
