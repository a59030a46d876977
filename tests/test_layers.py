"""The stateless building blocks: the causal depthwise conv against torch's conv1d."""
import pytest
import torch
import torch.nn.functional as F

from nested_learning.layers import CausalConv


@pytest.mark.parametrize("T", [1, 2, 3, 4, 17])
def test_causal_conv_equals_conv1d_over_history_and_input(T):
    torch.manual_seed(T)
    conv = CausalConv(6, 4)
    x, history = torch.randn(2, T, 6), torch.randn(2, 3, 6)
    y, new_history = conv(x, history)
    full = torch.cat([history, x], dim=1)  # [B, 3 + T, C]
    expected = F.conv1d(full.transpose(1, 2), conv.weight[:, None, :], groups=6).transpose(1, 2)
    assert torch.allclose(y, expected, atol=1e-6)
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
