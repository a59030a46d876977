"""The typed trace: handed out only when asked, with the documented shapes, and asking changes nothing."""
import pytest
import torch

from nested_learning.ablation import Ablation
from nested_learning.memories.self_modifying import Gate, Write
from nested_learning.trace import CMSTrace, HopeTrace, LayerTrace, MemoryTrace
from tests.conftest import random_tokens, tiny_model

UPDATES_OFF = Ablation(test_time_updates=False)


def test_a_plain_call_has_no_trace():
    model = tiny_model()
    assert model(random_tokens(1, 5)).trace is None
    with torch.no_grad():
        assert model(random_tokens(1, 5)).trace is None


def test_a_dict_for_the_trace_is_refused():
    """The trace used to be a dict the layers filled in place: such a caller would silently get none."""
    with pytest.raises(TypeError, match="HopeOutput.trace"):
        tiny_model()(random_tokens(1, 5), trace={})


@pytest.mark.parametrize("preset", ["hope", "hope-paper"])  # delta rule, momentum
@pytest.mark.parametrize("ablation", [Ablation(), UPDATES_OFF], ids=["updates", "no-updates"])
def test_the_trace_has_the_documented_shapes_and_changes_nothing(preset, ablation):
    model = tiny_model(preset, key_expansion=2)  # keys twice as wide as values: the two widths cannot be swapped
    config = model.config
    B, T, H, d, dk = 2, 10, config.n_memory_heads, config.memory_head_dim, config.memory_key_dim
    tokens = random_tokens(B, T)
    with torch.no_grad():
        plain = model(tokens, ablation=ablation)
        traced = model(tokens, ablation=ablation, trace=True)
        weighed = model(tokens, ablation=ablation, trace=True, trace_attention=True)  # (another attention kernel)
    assert torch.equal(plain.logits, traced.logits)
    for a, b in zip(plain.state.tensors().values(), traced.state.tensors().values(), strict=True):
        assert torch.equal(a, b)
    assert isinstance(traced.trace, HopeTrace) and len(traced.trace.layers) == config.n_layers
    for layer, with_weights in zip(traced.trace.layers, weighed.trace.layers):
        memory = layer.memory
        assert isinstance(memory, MemoryTrace)
        for name in ("surprise", "gate_surprise", "learning_rate", "retention"):
            assert getattr(memory, name).shape == (B, H, T), name
        for name in ("unit_keys", "values", "errors"):
            assert getattr(memory, name).shape == (B, H, T, d), name
        assert memory.keys.shape == (B, H, T, dk)
        momentum_gate = config.momentum and ablation.test_time_updates
        assert (memory.momentum_gate is not None) == momentum_gate
        if momentum_gate:
            assert memory.momentum_gate.shape == (B, H, T)
        if not ablation.test_time_updates:  # nothing written, nothing decays; the error is still the memory's
            assert not memory.learning_rate.any() and (memory.retention == 1).all() and memory.errors.any()
        # the surprise is the error's norm, in every rule, updates off too
        assert torch.allclose(memory.surprise, memory.errors.norm(dim=-1), rtol=1e-4, atol=1e-6)
        assert isinstance(layer.cms, CMSTrace) and layer.cms.input.shape == (B, T, config.d_model)
        assert layer.cms.levels == ()  # the levels' pairs are replayed from the input when wanted
        assert layer.attention_weights is None  # only with trace_attention
        if config.attention:
            assert with_weights.attention_weights.shape[:3] == (B, config.n_heads, T)
        else:
            assert with_weights.attention_weights is None


def test_switched_off_branches_have_no_trace():
    model = tiny_model()
    trace = model(random_tokens(1, 6), ablation=Ablation(memory=False, cms=False), trace=True).trace
    assert all(layer == LayerTrace(None, None, None) for layer in trace.layers)  # no attention weights unless asked


def test_an_empty_call_traces_no_layers():
    model = tiny_model()
    assert model(torch.zeros(1, 0, dtype=torch.long), trace=True).trace == HopeTrace()


@pytest.mark.parametrize("preset", ["hope", "hope-paper"])
@pytest.mark.parametrize("ablation", [Ablation(), UPDATES_OFF], ids=["updates", "no-updates"])
@pytest.mark.parametrize("traced", [False, True])
def test_gate_and_write_have_one_shape_in_every_branch(preset, ablation, traced):
    """``_gate`` and ``_write`` hand out the same named fields whatever rule wrote (delta rule, momentum)
    or none (updates off); what is None depends only on the documented conditions."""
    model = tiny_model(preset, key_expansion=2)
    memory_module, config = model.blocks[0].memory, model.config
    B, n, H, d, dk = 1, 8, config.n_memory_heads, config.memory_head_dim, config.memory_key_dim
    calls = {}

    def spy(name, method):
        def wrapped(*args, **kwargs):
            calls[name] = method(*args, **kwargs)
            return calls[name]
        return wrapped

    memory_module._gate = spy("gate", memory_module._gate)
    memory_module._write = spy("write", memory_module._write)
    with torch.no_grad():
        model(random_tokens(B, n), ablation=ablation, trace=traced)
    gate, write = calls["gate"], calls["write"]
    assert type(gate) is Gate and type(write) is Write
    assert gate.learning_rate.shape == gate.log_retention.shape == (B, H, n)
    assert gate.error.shape == gate.surprise.shape == (B * H, n) and gate.reference_keys.shape == (B * H, n, d)
    assert write.output.shape == (B * H, n, d)
    assert write.memory.shape == (B * H, d, dk)
    assert (write.momentum is not None) == config.momentum
    updates = ablation.test_time_updates
    assert (write.error is not None) == (traced or (updates and config.momentum))
    assert (write.surprise is not None) == (traced or (updates and config.momentum))
    assert (write.log_momentum_gate is not None) == (updates and config.momentum)
