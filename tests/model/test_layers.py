"""The building blocks: the causal conv against torch's conv1d, the projection memories' chunk step."""
import pytest
import torch
import torch.nn.functional as F

from nested_learning.layers import CausalConv


@pytest.mark.parametrize("passthrough", [0, 5])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 17])
def test_causal_conv_equals_conv1d_over_history_and_input(T, passthrough):
    """``passthrough`` extra channels after the convolved ones come out bit-identical."""
    torch.manual_seed(T)
    conv = CausalConv(6, 4)
    x, history = torch.randn(2, T, 6 + passthrough), torch.randn(2, 3, 6)
    y, new_history = conv(x, history, passthrough=passthrough)
    full = torch.cat([history, x[..., :6]], dim=1)  # [B, 3 + T, C]
    expected = F.conv1d(full.transpose(1, 2), conv.weight[:, None, :], groups=6).transpose(1, 2)
    assert y.shape == x.shape and torch.allclose(y[..., :6], expected, atol=1e-6)
    assert torch.equal(y[..., 6:], x[..., 6:])
    assert torch.equal(new_history, full[:, -3:])  # the next call continues the stream


def test_causal_conv_starts_random_not_identity():
    """Identity taps kept a small hope model from learning to copy (see the class docstring)."""
    weight = CausalConv(256, 4).weight
    assert weight[:, :-1].abs().mean() > 0.1 and weight.abs().max() <= 0.5


def test_causal_conv_gradients_reach_weights_inputs_and_history():
    conv = CausalConv(3, 4)
    x, history = torch.randn(1, 2, 3, requires_grad=True), torch.randn(1, 3, 3, requires_grad=True)
    y, _ = conv(x, history)
    y.square().sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (conv.weight, x, history))


def test_projection_memory_whole_chunk_step_equals_accumulate_then_update():
    """A whole chunk's one-shot step (the common path) is the pending-sum path it shortcuts."""
    from nested_learning.memories.projection_memory import ProjectionMemories
    g = torch.Generator().manual_seed(0)
    memories = ProjectionMemories(d_model=16, hidden=4, init_std=0.1)
    state = memories.init_state(batch_size=2)
    state = ProjectionMemories.apply_update(ProjectionMemories.accumulate(  # non-trivial weights first
        state, torch.randn(2, 2, 8, 16, generator=g), torch.rand(2, 8, generator=g), -torch.rand(2, 8, generator=g)), 8)
    pairs, rate = torch.randn(2, 2, 8, 16, generator=g), torch.rand(2, 8, generator=g)
    log_retention = -0.1 * torch.rand(2, 8, generator=g)
    stepped = ProjectionMemories.step(state, pairs, rate, log_retention)
    pending = ProjectionMemories.apply_update(ProjectionMemories.accumulate(state, pairs, rate, log_retention), 8)
    for a, b in ((stepped.w_in, pending.w_in), (stepped.w_out, pending.w_out)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert not torch.equal(stepped.w_in, state.w_in)  # the step did move the weights
    assert stepped.pending_in.abs().sum() == 0 and stepped.pending_log_retention.abs().sum() == 0


def test_projection_memories_stay_within_their_norm_limit():
    """Stepped again and again towards a target that moves with them, the fast weights stop at
    NORM_LIMIT x their learned initial norm; without the limit the same steps carry them past it."""
    from nested_learning.memories.projection_memory import NORM_LIMIT, ProjectionMemories
    g = torch.Generator().manual_seed(0)
    memories = ProjectionMemories(d_model=16, hidden=4, init_std=0.5)
    limits = memories.norm_limits()
    pairs = torch.randn(1, 2, 8, 16, generator=g).mul_(10)  # the same chunk every time, as in a repeated phrase
    rate, log_retention = torch.ones(1, 8), torch.zeros(1, 8)
    bounded = unbounded = memories.init_state(batch_size=1)
    for _ in range(300):
        bounded = ProjectionMemories.step(bounded, pairs, rate, log_retention, limits)
        unbounded = ProjectionMemories.step(unbounded, pairs, rate, log_retention)
    initial = memories.initial_in.detach().flatten(1).norm(dim=1)
    assert (bounded.w_in.flatten(2).norm(dim=-1)[0] <= NORM_LIMIT * initial * (1 + 1e-5)).all()
    assert (unbounded.w_in.flatten(2).norm(dim=-1)[0] > NORM_LIMIT * initial).any()
