"""Every chunked kernel equals its per-token oracle (fp32 relative error < 1e-4), at equal key and value
widths and at the shipped memory's ratio (keys 8x wider than values: 1,024 x 128 there)."""
import math

import pytest
import torch

from nested_learning import DeltaRuleMemory
from nested_learning.ops.block_delta import _run_structure
from nested_learning.memories.self_modifying import _predict
from nested_learning.ops import (block_delta_rule, block_delta_rule_reference, gated_delta_chunk, gated_delta_rule,
                                 gated_delta_rule_reference, l2norm, momentum_rule_chunk, momentum_rule_reference)
from nested_learning.ops import shape_check


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


# (key width dk, value width dv): equal, and keys 8x wider as in the shipped memory (DPFP, key_expansion 8)
WIDTHS = [(16, 16), (64, 8)]


def inputs(T, d=16, B=2, H=3, seed=0, dv=None):
    """Unit queries and keys of width d, values of width dv (default d), memory [B, H, dv, d]."""
    g = torch.Generator().manual_seed(seed)
    dv = dv or d
    q, k = (l2norm(torch.randn(B, H, T, d, generator=g)) for _ in range(2))
    v = torch.randn(B, H, T, dv, generator=g)
    eta = torch.rand(B, H, T, generator=g)
    log_retention = torch.log(0.8 + 0.2 * torch.rand(B, H, T, generator=g))
    memory = torch.randn(B, H, dv, d, generator=g)
    return q, k, v, eta, log_retention, memory


def fold(x):  # [B, H, ...] -> [B H, ...]: the self-modifying memory's layout
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


@pytest.mark.parametrize("dk, dv", WIDTHS)
@pytest.mark.parametrize("T", [64, 128, 100, 7, 1])
@pytest.mark.parametrize("chunk", [16, 64])
def test_gated_delta_chunked_equals_oracle(T, chunk, dk, dv):
    q, k, v, eta, log_retention, memory = inputs(T, d=dk, dv=dv)
    ref = gated_delta_rule_reference(q, k, v, eta, log_retention, memory)
    out = gated_delta_rule(q, k, v, eta, log_retention, memory, chunk_size=chunk)
    assert out.memory.shape == (2, 3, dv, dk) and out.output.shape == (2, 3, T, dv)
    assert rel(out.output, ref.output) < 1e-4
    assert rel(out.error, ref.error) < 1e-4
    assert rel(out.memory, ref.memory) < 1e-4


@pytest.mark.parametrize("T", [100, 64])
def test_gated_delta_with_wide_values_equals_oracle(T):
    """Values wider than keys (dv = 4 dk): the kernel makes no assumption on which is wider."""
    q, k, v, eta, log_retention, memory = inputs(T, dv=64)
    ref = gated_delta_rule_reference(q, k, v, eta, log_retention, memory)
    out = gated_delta_rule(q, k, v, eta, log_retention, memory, chunk_size=16)
    for name in ("output", "error", "memory"):
        assert rel(getattr(out, name), getattr(ref, name)) < 1e-4, name


@pytest.mark.parametrize("dk, dv", WIDTHS)
@pytest.mark.parametrize("floor", [None, math.log(0.8)])
@pytest.mark.parametrize("T", [64, 37])
def test_one_chunk_with_memory_keys_equals_oracle(T, floor, dk, dv):
    """The self-modifying memory's call: one chunk on folded heads, M_0 k handed in instead of
    recomputed, decays folded into keys and queries when the caller bounds the retention (``floor``)."""
    q, k, v, eta, log_retention, memory = inputs(T, d=dk, dv=dv)
    ref = gated_delta_rule_reference(q, k, v, eta, log_retention, memory)
    q, k, v, eta, log_retention, memory = map(fold, (q, k, v, eta, log_retention, memory))
    out = gated_delta_chunk(q, k, v, eta, log_retention, memory, k @ memory.transpose(-1, -2),
                            return_error=True, log_retention_floor=floor)
    for name in ("output", "error", "memory"):
        assert rel(getattr(out, name), fold(getattr(ref, name))) < 1e-4, name


def test_scaled_one_chunk_is_used_only_within_its_range():
    """A floor whose total decay could pass e^-30 keeps the decay-matrix path: this chunk decays to
    e^-120, and e^{+120} overflows float32 (the scaled path would return inf and NaN)."""
    q, k, v, eta, _, memory = inputs(60)
    log_retention = torch.full_like(eta, -2.0)
    ref = gated_delta_rule_reference(q, k, v, eta, log_retention, memory)
    out = gated_delta_chunk(*map(fold, (q, k, v, eta, log_retention, memory)), log_retention_floor=-2.0)
    assert torch.isfinite(out.memory).all() and rel(out.output, fold(ref.output)) < 1e-4


def test_shape_contracts_are_checked_in_the_tests():
    """tests/conftest.py switches the contracts on: a memory whose key width is not the keys' is refused
    with the axis named, before the kernel runs (unchecked, this broadcast would fail deeper or not at all)."""
    assert shape_check.CHECKING
    q, k, v, eta, log_retention, memory = map(fold, inputs(8, d=64, dv=8))
    with pytest.raises(shape_check.ShapeError, match=r"argument 'memory'.*dk = 64"):
        gated_delta_chunk(q, k, v, eta, log_retention, memory[..., :32])
    with pytest.raises(shape_check.ShapeError, match=r"argument 'v'.*B = 2"):  # values of another batch
        gated_delta_rule(*inputs(8, d=64, dv=8)[:2], inputs(8, B=1, d=64, dv=8)[2], *inputs(8, d=64, dv=8)[3:])
    # the memories' states too: a state whose memory is as wide as the values (d x d), in a model whose keys
    # are 8x wider (the hope preset), is refused at the call, naming the field
    from dataclasses import replace
    from nested_learning import HopeConfig, SelfModifyingMemory
    memory = SelfModifyingMemory(HopeConfig.preset("hope", d_model=16, projection_hidden=4))
    state = memory.init_state(2)
    assert state.memory.shape == (2, 1, 16, 128)
    with pytest.raises(shape_check.ShapeError, match=r"argument 'state'.reference.*dk = 128"):
        memory(torch.randn(2, 5, 16), replace(state, reference=state.memory[..., :16]), 0)
    with pytest.raises(shape_check.ShapeError, match="result"):  # a result breaking its contract is caught too
        shape_check.shapes(x="N d", returns="N d")(lambda x: x.T)(torch.zeros(2, 3))


def test_shape_contracts_cost_nothing_when_off(monkeypatch):
    """Off (production), the decorator hands back the function itself: no wrapper call at all."""
    monkeypatch.setattr(shape_check, "CHECKING", False)
    function = lambda x: x  # noqa: E731
    assert shape_check.shapes(x="N d")(function) is function


@pytest.mark.parametrize("period", [1, 2, 3, 8, 64, 100])
@pytest.mark.parametrize("start", [0, 5, 64])
@pytest.mark.parametrize("T", [128, 150])
def test_block_delta_chunked_equals_oracle(period, start, T):
    q, k, v, eta, _, memory = inputs(T, seed=period)
    eta = eta / period
    pending = torch.randn_like(memory) * 0.1 if start % period else torch.zeros_like(memory)
    log_retention = torch.log(0.8 + 0.2 * torch.rand(2, 3))
    ref = block_delta_rule_reference(q, k, v, eta, log_retention, memory, pending, start, period)
    out = block_delta_rule(q, k, v, eta, log_retention, memory, pending, start, period)
    assert rel(out.output, ref.output) < 1e-4
    assert rel(out.memory, ref.memory) < 1e-4
    assert rel(out.writes, ref.writes) < 1e-4
    assert torch.allclose(out.pending, ref.pending, atol=1e-5)


@pytest.mark.parametrize("period", [1, 4, 64])
@pytest.mark.parametrize("shared, dv", [(False, 32), (True, 32), (True, 8)])
def test_block_delta_with_wide_values_and_no_writes_equals_oracle(period, shared, dv):
    """The CMS shape: values wider than keys (dv = 4 dk); without writes the aligned runs never form u.
    ``shared``: one retention for every sequence, as a CMS level passes it (decays kept as one row)."""
    g = torch.Generator().manual_seed(period)
    B, H, T, dk = 2, 1, 200, 8
    q, k = (l2norm(torch.randn(B, H, T, dk, generator=g)) for _ in range(2))
    v = torch.randn(B, H, T, dv, generator=g)
    eta = torch.rand(B, H, T, generator=g) / period
    memory = torch.randn(B, H, dv, dk, generator=g)
    log_retention = torch.log(0.8 + 0.2 * torch.rand(() if shared else (B, H), generator=g))
    ref = block_delta_rule_reference(q, k, v, eta, log_retention, memory, torch.zeros_like(memory), 0, period)
    out = block_delta_rule(q, k, v, eta, log_retention, memory, torch.zeros_like(memory), 0, period, return_writes=False)
    assert out.writes is None
    assert rel(out.output, ref.output) < 1e-4 and rel(out.memory, ref.memory) < 1e-4
    with_writes = block_delta_rule(q, k, v, eta, log_retention, memory, torch.zeros_like(memory), 0, period)
    assert rel(with_writes.writes, ref.writes) < 1e-4


@pytest.mark.parametrize("start", [0, 100])
def test_block_delta_with_periods_longer_than_a_chunk_equals_oracle_values_and_gradients(start):
    """Periods beyond ``chunk_tokens`` (the shipped CMS's 256 and 1,024) read each block with frozen weights
    in a few matmuls: several such blocks in a row, a cut block at each end, and the gradients training
    takes through them, all as the per-token oracle gives them."""
    q, k, v, eta, _, memory = inputs(700, seed=3)
    eta = (eta / 128).requires_grad_()
    memory = memory.clone().requires_grad_()
    pending = torch.randn_like(memory) * 0.1 if start else torch.zeros_like(memory)
    log_retention = torch.log(0.8 + 0.2 * torch.rand(2, 3))
    ref = block_delta_rule_reference(q, k, v, eta, log_retention, memory, pending, start, 128)
    out = block_delta_rule(q, k, v, eta, log_retention, memory, pending, start, 128, chunk_tokens=64)
    assert rel(out.output, ref.output) < 1e-4 and rel(out.memory, ref.memory) < 1e-4
    assert rel(out.writes, ref.writes) < 1e-4 and torch.allclose(out.pending, ref.pending, atol=1e-5)
    loss = lambda r: r.output.square().sum() + r.memory.square().sum()
    want = torch.autograd.grad(loss(ref), (eta, memory))
    got = torch.autograd.grad(loss(out), (eta, memory))
    assert all(rel(g, w) < 1e-4 for g, w in zip(got, want))


def test_block_structure_cached_in_inference_mode_still_trains():
    """The aligned runs' cached block layout, first built under inference_mode, can later be saved
    for backward (an inference tensor there would make training fail)."""
    q, k, v, eta, _, memory = inputs(80, seed=11)
    log_retention = torch.tensor(-0.1, requires_grad=True)
    args = (q, k, v, eta / 5, log_retention, memory, torch.zeros_like(memory), 0, 5)
    _run_structure.cache_clear()
    with torch.inference_mode():
        block_delta_rule(*args, chunk_tokens=40)  # the layout is built (and cached) here
    block_delta_rule(*args, chunk_tokens=40).output.sum().backward()
    assert log_retention.grad is not None and torch.isfinite(log_retention.grad)


@pytest.mark.parametrize("with_momentum", [True, False])
@pytest.mark.parametrize("T", [64, 37])
def test_momentum_chunk_equals_oracle(with_momentum, T):
    q, k, v, eta, log_retention, memory = inputs(T)
    g = torch.Generator().manual_seed(1)
    beta = 0.9 * torch.rand(eta.shape, generator=g) if with_momentum else torch.zeros_like(eta)
    momentum, reference = torch.randn_like(memory) * 0.1, torch.randn_like(memory)
    ref = momentum_rule_reference(q, k, v, eta, log_retention, beta, memory, momentum, reference)
    out = momentum_rule_chunk(q, k, v, eta, log_retention, beta.log() if with_momentum else None, memory, momentum, reference)
    for a, b in zip(out, ref):
        assert rel(a, b) < 1e-4


@pytest.mark.parametrize("T", [128, 90])
def test_delta_rule_memory_chunked_equals_reference(T):
    torch.manual_seed(0)
    module = DeltaRuleMemory(d_model=32, n_heads=2, chunk_size=16)
    torch.nn.init.normal_(module.initial_memory)
    x = torch.randn(2, T, 32)
    y, memory, surprise = module(x, return_surprise=True)
    y_ref, memory_ref, surprise_ref = module(x, use_reference=True, return_surprise=True)
    assert rel(y, y_ref) < 1e-4 and rel(memory, memory_ref) < 1e-4 and rel(surprise, surprise_ref) < 1e-4
    # Carrying the memory across two calls equals one call.
    y1, m1 = module(x[:, :50])
    y2, m2 = module(x[:, 50:], memory=m1)
    assert rel(torch.cat([y1, y2], 1), y) < 1e-4 and rel(m2, memory) < 1e-4


def test_the_models_memory_with_hopes_additions_off_writes_what_delta_rule_memory_writes():
    """DeltaRuleMemory is the reference of the model's memory layer: SelfModifyingMemory with static
    projections and no surprise term in its gate (no momentum, conv, shifted or widened keys), given the
    same weights, writes the same memory and sees the same per-token surprise, across calls and chunks."""
    from nested_learning import HopeConfig, SelfModifyingMemory
    torch.manual_seed(0)
    config = HopeConfig(d_model=32, n_heads=2, self_modifying=False, momentum=False, local_conv=0, shifted_keys=False,
                        key_expansion=1, memory_chunk_size=16)
    model_memory = SelfModifyingMemory(config)
    reference = DeltaRuleMemory(32, n_heads=2, max_learning_rate=config.max_learning_rate,
                                min_retention=config.min_retention, chunk_size=16)
    with torch.no_grad():
        model_memory.surprise_weight.zero_()
        torch.nn.init.normal_(model_memory.initial_memory)
        torch.nn.init.normal_(model_memory.gates.weight)
        reference.qkv.weight.copy_(model_memory.in_proj.weight)
        reference.gates.load_state_dict(model_memory.gates.state_dict())
        reference.initial_memory.copy_(model_memory.initial_memory)
    x = torch.randn(2, 70, 32)
    _, state, first = model_memory(x[:, :30], model_memory.init_state(2), 0, trace=True)
    _, state, second = model_memory(x[:, 30:], state, 30, trace=True)
    _, memory, surprise = reference(x, return_surprise=True)
    assert state.memory.shape == memory.shape == (2, 2, 16, 16)
    assert rel(state.memory, memory) < 1e-5
    assert rel(torch.cat([first.surprise, second.surprise], dim=2), surprise) < 1e-5


KERNEL_CALLS = {  # each kernel on bf16-rounded inputs, as a mixed-precision model hands them over
    "gated_delta": lambda q, k, v, eta, lr, m: gated_delta_rule(q, k, v, eta, lr, m),
    "gated_delta_chunk": lambda q, k, v, eta, lr, m: gated_delta_chunk(*map(fold, (q, k, v, eta, lr, m))),
    "block_delta": lambda q, k, v, eta, lr, m: block_delta_rule(q, k, v, eta, lr[:, :, 0], m, torch.zeros_like(m), 0, 4),
    "momentum": lambda q, k, v, eta, lr, m: momentum_rule_chunk(q, k, v, eta, lr, None, m, torch.zeros_like(m), m),
    # the self-modifying memory hands M k (heads folded) to the kernel
    "memory_keys": lambda q, k, v, eta, lr, m: (_predict(k.flatten(0, 1), m.flatten(0, 1)),),
}


@pytest.mark.parametrize("kernel", KERNEL_CALLS)
def test_kernels_compute_in_float32_under_bf16_autocast(kernel):
    """Fast weights must not be summed in bf16 (and CUDA has no bf16 triangular solve): under autocast
    a kernel gives exactly what it gives in float32 on the same (bf16-rounded) inputs."""
    q, k, v, eta, log_retention, memory = inputs(40)
    q, k, v = (x.bfloat16() for x in (q, k, v))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = KERNEL_CALLS[kernel](q, k, v, eta, log_retention, memory)
    exact = KERNEL_CALLS[kernel](q.float(), k.float(), v.float(), eta, log_retention, memory)
    for a, b in zip(mixed, exact):
        if a is not None:
            assert a.dtype == torch.float32 and torch.equal(a, b)


def test_dpfp_features_raise_a_delta_memory_capacity():
    """32 random associations written once each into a memory with 16-wide keys: past its key width the
    plain memory overwrites nearly all it held; DPFP keys of width 64 keep a good part of it."""
    from nested_learning.ops import dpfp
    g = torch.Generator().manual_seed(0)
    keys, values = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)

    def recall_error(features):
        k = l2norm(features(l2norm(keys)))
        memory = torch.zeros(16, k.shape[-1])
        for k_t, v_t in zip(k, values):  # delta rule, learning rate 1
            memory = memory + torch.outer(v_t - memory @ k_t, k_t)
        return ((k @ memory.T - values).norm(dim=-1) / values.norm(dim=-1)).mean()

    plain, wide = recall_error(lambda x: x), recall_error(lambda x: dpfp(x, 2))
    assert dpfp(torch.ones(3, 16), 2).shape == (3, 64)
    assert plain > 0.9 and wide < 0.75 * plain, (plain, wide)
