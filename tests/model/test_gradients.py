"""Differentiable writes: the outer loss reaches the gates and initial memories through the writes."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from tests.conftest import random_tokens, tiny_model

WRITE_PARAMS = [
    "blocks.0.memory.gates.weight", "blocks.0.memory.gates.bias", "blocks.0.memory.surprise_weight",
    "blocks.0.memory.initial_memory",
    "blocks.0.memory.projections.initial_in", "blocks.0.memory.projections.initial_out",
    "blocks.0.cms.levels.0.lr_logit", "blocks.0.cms.levels.0.retention_logit",
    "blocks.0.cms.levels.3.initial_memory", "blocks.0.cms.levels.3.key_proj.weight",
]


def lm_loss(logits, tokens):
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def test_gradient_reaches_write_parameters():
    model = tiny_model().train()
    tokens = random_tokens(2, 40)
    lm_loss(model(tokens).logits, tokens).backward()
    params = dict(model.named_parameters())
    for name in WRITE_PARAMS:
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name
    heads = model.config.n_heads  # gate rows: learning rate, then retention
    gates = params["blocks.0.memory.gates.weight"].grad
    assert gates[:heads].abs().sum() > 0 and gates[heads:2 * heads].abs().sum() > 0


def test_momentum_gate_gets_gradient():
    model = tiny_model("titans").train()
    tokens = random_tokens(1, 40)
    lm_loss(model(tokens).logits, tokens).backward()
    heads = model.config.n_heads
    assert model.blocks[0].memory.gates.weight.grad[2 * heads:].abs().sum() > 0  # momentum rows


@pytest.mark.parametrize("name", ["blocks.0.memory.gates.bias", "blocks.0.memory.surprise_weight",
                                  "blocks.1.memory.initial_memory", "blocks.0.cms.levels.1.lr_logit",
                                  "blocks.0.memory.projections.initial_out"])
def test_write_gradients_match_finite_differences(name):
    model = tiny_model(dtype=torch.float64, d_model=8, n_heads=2, projection_hidden=4, cms_hidden=4,
                       memory_chunk_size=4, cms_periods=(1, 2), n_persistent_tokens=1).train()
    tokens = random_tokens(1, 10)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p):
        return lm_loss(functional_call(model, {**params, name: p}, (tokens,)).logits, tokens)

    assert torch.autograd.gradcheck(loss, (params[name].clone().requires_grad_(),), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("dk, dv", [(8, 8), (64, 8)])  # and keys 8x wider, as in the shipped memory
@pytest.mark.parametrize("T, chunk, floor, memory_keys", [(64, 16, None, False), (100, 16, None, False),
                                                          (64, 64, None, False), (50, 64, None, True),
                                                          (50, 64, math.log(0.8), True)])
def test_chunked_delta_rule_gradients_equal_the_oracles(T, chunk, floor, memory_keys, dk, dv):
    """Backprop through the chunk kernel the model runs, looped over chunks (``gated_delta_rule``) or as
    the self-modifying memory calls it (one chunk, heads folded, M_0 k handed in), with its in-place
    steps, equals backprop through the per-token loop, for every input: queries, keys, values, rates,
    retention, start memory."""
    from nested_learning.ops import gated_delta_chunk, gated_delta_rule, gated_delta_rule_reference, l2norm
    g = torch.Generator().manual_seed(T)
    B, H = 1, 2
    leaves = [l2norm(torch.randn(B, H, T, dk, generator=g, dtype=torch.float64)),
              l2norm(torch.randn(B, H, T, dk, generator=g, dtype=torch.float64)),
              torch.randn(B, H, T, dv, generator=g, dtype=torch.float64),
              torch.rand(B, H, T, generator=g, dtype=torch.float64),
              torch.log(0.8 + 0.2 * torch.rand(B, H, T, generator=g, dtype=torch.float64)),
              torch.randn(B, H, dv, dk, generator=g, dtype=torch.float64)]
    weights = [torch.randn(shape, generator=g, dtype=torch.float64) for shape in ((B, H, T, dv), (B, H, T, dv), (B, H, dv, dk))]

    def as_the_memory_calls_it(q, k, v, eta, log_retention, memory):
        fold = lambda x: x.flatten(0, 1)
        q, k, v, eta, log_retention, memory = map(fold, (q, k, v, eta, log_retention, memory))
        out = gated_delta_chunk(q, k, v, eta, log_retention, memory, k @ memory.transpose(1, 2),
                                return_error=True, log_retention_floor=floor)
        return [x.view(B, H, *x.shape[1:]) for x in out]

    def grads(kernel, **kwargs):
        inputs = [x.clone().requires_grad_() for x in leaves]
        out = kernel(*inputs, **kwargs)
        loss = sum((w * t).sum() for w, t in zip(weights, out))
        return torch.autograd.grad(loss, inputs)

    chunked = grads(as_the_memory_calls_it) if memory_keys else grads(gated_delta_rule, chunk_size=chunk,
                                                                        log_retention_floor=floor)
    for chunked, reference in zip(chunked, grads(gated_delta_rule_reference)):
        assert torch.allclose(chunked, reference, rtol=1e-8, atol=1e-10)
