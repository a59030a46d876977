"""The deep (2-layer MLP) memory kernel against a plain per-token oracle at the same semantics."""
import math

import pytest
import torch
import torch.nn.functional as F

from nested_learning.ops import deep_memory_chunk, mlp_read
from nested_learning.ops.common import l2norm


def reference_step(k, v, eta, w1_ref, w2_ref):
    """One token's gradient of 1/2||W1 silu(W2 k) - v||^2 at the reference weights (autograd) and its rate
    eta / max(1, ||a||^2 + ||k||^2 sum_j silu'(z_j)^2 ||W1r[:, j]||^2)."""
    a_ref, b_ref = w1_ref.detach().requires_grad_(), w2_ref.detach().requires_grad_()
    hidden = F.silu(b_ref @ k)
    grad_w1, grad_w2 = torch.autograd.grad(0.5 * (a_ref @ hidden - v).square().sum(), (a_ref, b_ref))
    z = (w2_ref @ k).detach().requires_grad_()
    slope, = torch.autograd.grad(F.silu(z).sum(), z)
    bound = hidden.detach().square().sum() + k.square().sum() * (slope.square() * w1_ref.square().sum(0)).sum()
    return grad_w1, grad_w2, eta / torch.clamp(bound, min=1.0)


def oracle(q, k, v, eta, log_retention, w1, w2, w1_ref, w2_ref, anchors=(0.0, 0.0), momenta=None, beta=None):
    """Token by token: the gradient of 1/2||W1 silu(W2 k) - v||^2 at the reference weights by autograd,
    the step divided by max(1, ||a||^2 + ||k||^2 sum_j silu'(z_j)^2 ||W1r[:, j]||^2), then
    W <- A + alpha (W - A) - rho grad and the read after the write. Shapes as the kernel's, one chunk.
    With ``momenta`` (S1, S2) and ``beta`` [N, T]: S <- beta S - rho grad, W <- A + alpha (W - A) + S, and
    the momenta after the chunk are returned too."""
    if momenta is not None:
        return momentum_oracle(q, k, v, eta, log_retention, w1, w2, w1_ref, w2_ref, anchors, momenta, beta)
    a1, a2 = (torch.as_tensor(a, dtype=w1.dtype).expand_as(w) for a, w in zip(anchors, (w1, w2)))
    outputs, errors = [], []
    for t in range(k.shape[1]):
        out_t, err_t = [], []
        for n in range(k.shape[0]):
            grad_w1, grad_w2, rho = reference_step(k[n, t], v[n, t], eta[n, t], w1_ref[n], w2_ref[n])
            err_t.append(v[n, t] - w1[n] @ F.silu(w2[n] @ k[n, t]))
            alpha = log_retention[n, t].exp()
            w1 = torch.cat([w1[:n], (a1[n] + alpha * (w1[n] - a1[n]) - rho * grad_w1)[None], w1[n + 1:]])
            w2 = torch.cat([w2[:n], (a2[n] + alpha * (w2[n] - a2[n]) - rho * grad_w2)[None], w2[n + 1:]])
            out_t.append(w1[n] @ F.silu(w2[n] @ q[n, t]))
        outputs.append(torch.stack(out_t))
        errors.append(torch.stack(err_t))
    return torch.stack(outputs, 1), torch.stack(errors, 1), w1, w2


def momentum_oracle(q, k, v, eta, log_retention, w1, w2, w1_ref, w2_ref, anchors, momenta, beta):
    """:func:`oracle` with Titans momentum, one matrix pair at a time (a plain loop over heads and tokens)."""
    a1, a2 = (torch.as_tensor(a, dtype=w1.dtype).expand_as(w) for a, w in zip(anchors, (w1, w2)))
    w1, w2, (s1, s2) = w1.clone(), w2.clone(), (m.clone() for m in momenta)
    outputs, errors = torch.zeros_like(v), torch.zeros_like(v)
    for n in range(k.shape[0]):
        for t in range(k.shape[1]):
            grad_w1, grad_w2, rho = reference_step(k[n, t], v[n, t], eta[n, t], w1_ref[n], w2_ref[n])
            errors[n, t] = v[n, t] - w1[n] @ F.silu(w2[n] @ k[n, t])
            alpha = log_retention[n, t].exp()
            s1[n] = beta[n, t] * s1[n] - rho * grad_w1
            s2[n] = beta[n, t] * s2[n] - rho * grad_w2
            w1[n] = a1[n] + alpha * (w1[n] - a1[n]) + s1[n]
            w2[n] = a2[n] + alpha * (w2[n] - a2[n]) + s2[n]
            outputs[n, t] = w1[n] @ F.silu(w2[n] @ q[n, t])
    return outputs, errors, w1, w2, s1, s2


def inputs(N=2, T=48, dk=64, dv=8, h=8, dtype=torch.float32, seed=0, value_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    randn = lambda *s: torch.randn(*s, generator=g, dtype=dtype)
    q, k = l2norm(randn(N, T, dk)), l2norm(randn(N, T, dk))
    v = randn(N, T, dv) * value_scale
    eta = torch.rand(N, T, generator=g, dtype=dtype)
    log_retention = torch.log(1 - 0.1 * torch.rand(N, T, generator=g, dtype=dtype))
    w1, w2 = randn(N, dv, h) * 0.5, randn(N, h, dk)
    return q, k, v, eta, log_retention, w1, w2


def run_chunks(q, k, v, eta, log_retention, w1, w2, chunk, position=0, kernel=deep_memory_chunk, reference=None,
               anchors=None, momenta=None, log_beta=None):
    """Read tokens in chunks aligned to the stream clock (``position``: the first token's): the
    reference is the weights at the last boundary (``reference``: where a stream read mid-chunk has it),
    passed from the caller like the module does. With ``momenta`` (S1, S2) the memory has momentum (beta
    = e^``log_beta``, None: 0), and the momenta after the run are returned last."""
    w1_ref, w2_ref = (w1, w2) if reference is None else reference
    outputs, errors, a = [], [], 0
    T = k.shape[1]
    while a < T:
        b = min(T, ((position + a) // chunk + 1) * chunk - position)
        part = lambda x: x[:, a:b]
        if kernel is deep_memory_chunk:
            extra = {} if anchors is None else dict(w1_anchor=anchors[0], w2_anchor=anchors[1])
            if momenta is not None:
                extra.update(m1=momenta[0], m2=momenta[1], log_momentum_gate=None if log_beta is None else part(log_beta))
            out = kernel(*map(part, (q, k, v, eta, log_retention)), w1, w2, w1_ref, w2_ref, return_error=True, **extra)
            output, error, w1, w2 = out[:4]  # (its write factors, out.back and out.rate, are the recorder's)
            if momenta is not None:
                momenta = (out.m1, out.m2)
        else:
            extra = {}
            if momenta is not None:
                extra = dict(momenta=momenta, beta=torch.zeros_like(part(eta)) if log_beta is None else part(log_beta).exp())
            output, error, w1, w2, *rest = kernel(*map(part, (q, k, v, eta, log_retention)), w1, w2, w1_ref, w2_ref,
                                                  anchors=(0.0, 0.0) if anchors is None else anchors, **extra)
            if momenta is not None:
                momenta = tuple(rest)
        outputs.append(output)
        errors.append(error)
        if (position + b) % chunk == 0:
            w1_ref, w2_ref = w1, w2
        a = b
    found = (torch.cat(outputs, 1), torch.cat(errors, 1), w1, w2, w1_ref, w2_ref)
    return found if momenta is None else found + tuple(momenta)


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("chunk, anchored", [(1, False), (5, True), (16, False), (16, True), (48, True)])
def test_kernel_matches_per_token_oracle(chunk, anchored):
    """Keys wider than values (d_k 64, d_v 8), as the shipped model's 1,024 x 128; float32 within 1e-4;
    retention toward zero or toward anchor weights (the module's learned initial weights)."""
    x = inputs()
    anchors = (x[5] * 0.3 - 0.2, x[6].flip(-1)) if anchored else None
    got = run_chunks(*x, chunk, anchors=anchors)
    with torch.enable_grad():
        want = run_chunks(*(t.double() for t in x), chunk, kernel=oracle,
                          anchors=None if anchors is None else tuple(a.double() for a in anchors))
    for name, a, b in zip(("output", "error", "w1", "w2"), got, want):
        assert rel(a.double(), b) < 1e-4, name


def momentum_inputs(x, seed=1, beta_max=0.9):
    """Start momenta (W-shaped) and log beta in (log 0, log beta_max) for :func:`inputs`' tensors."""
    g = torch.Generator().manual_seed(seed)
    w1, w2, eta = x[5], x[6], x[3]
    momenta = tuple(0.1 * torch.randn(w.shape, generator=g, dtype=w.dtype) for w in (w1, w2))
    return momenta, torch.log(beta_max * torch.rand(eta.shape, generator=g, dtype=eta.dtype))


@pytest.mark.parametrize("chunk, anchored, beta", [(1, True, True), (5, False, True), (16, True, True),
                                                   (16, True, False), (48, False, True)])
def test_momentum_kernel_matches_per_token_oracle(chunk, anchored, beta):
    """Titans momentum on both matrices (beta in [0, 0.9) per token, or none: beta = 0 drops the start
    momentum), the start momenta nonzero: reads, errors before each write, weights and momenta."""
    x = inputs()
    momenta, log_beta = momentum_inputs(x)
    log_beta = log_beta if beta else None
    anchors = (x[5] * 0.3 - 0.2, x[6].flip(-1)) if anchored else None
    got = run_chunks(*x, chunk, anchors=anchors, momenta=momenta, log_beta=log_beta)
    with torch.enable_grad():
        want = run_chunks(*(t.double() for t in x), chunk, kernel=oracle,
                          anchors=None if anchors is None else tuple(a.double() for a in anchors),
                          momenta=tuple(m.double() for m in momenta), log_beta=None if log_beta is None else log_beta.double())
    for name, a, b in zip(("output", "error", "w1", "w2", "w1_ref", "w2_ref", "m1", "m2"), got, want):
        assert rel(a.double(), b) < 1e-4, name


def test_momentum_changes_the_rule_and_zero_momenta_without_beta_are_the_plain_rule():
    """beta > 0 differs from the plain rule; beta = 0 from zero momenta is exactly the plain rule (one step
    each, nothing carried) and returns the last token's own step as the momentum."""
    x = inputs(dtype=torch.float64)
    zero = tuple(torch.zeros_like(w) for w in x[5:7])
    plain = run_chunks(*x, 16)
    no_beta = run_chunks(*x, 16, momenta=zero, log_beta=None)
    for a, b in zip(plain, no_beta):
        assert rel(b, a) < 1e-12
    assert rel(run_chunks(*x, 16, momenta=zero, log_beta=momentum_inputs(x)[1])[0], plain[0]) > 1e-3


def test_momentum_two_calls_equal_one():
    """Split inside a chunk, the reference and both momenta carried: the same reads, weights and momenta."""
    x = inputs(T=40, dtype=torch.float64)
    momenta, log_beta = momentum_inputs(x)
    whole = run_chunks(*x, 16, momenta=momenta, log_beta=log_beta)
    first = run_chunks(*(t[:, :11] for t in x[:5]), *x[5:], 16, momenta=momenta, log_beta=log_beta[:, :11])
    rest = run_chunks(*(t[:, 11:] for t in x[:5]), first[2], first[3], 16, position=11, reference=first[4:6],
                      momenta=first[6:], log_beta=log_beta[:, 11:])
    assert rel(torch.cat([first[0], rest[0]], 1), whole[0]) < 1e-12
    assert rel(torch.cat([first[1], rest[1]], 1), whole[1]) < 1e-12
    for a, b in zip(rest[2:], whole[2:]):
        assert rel(a, b) < 1e-12


def test_momentum_gradcheck_float64():
    """Training differentiates through the momentum form too (beta, start momenta included)."""
    x = [t.double() for t in inputs(N=1, T=5, dk=6, dv=3, h=4)]
    momenta, log_beta = momentum_inputs(x)
    args = [t.clone().requires_grad_() for t in (*x, x[5] - 0.2, x[6] * 0.5, *momenta, log_beta)]
    fn = lambda *a: tuple(t for t in deep_memory_chunk(*a[:7], w1_anchor=a[7], w2_anchor=a[8], return_error=True,
                                                       m1=a[9], m2=a[10], log_momentum_gate=a[11]) if t is not None)
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)


def test_kernel_matches_oracle_for_a_chunk_cut_by_the_call():
    """A run starting mid-chunk (stream position 3, chunk 8): gradients at the reference weights, which
    differ from the run's start weights; reads and errors from the start weights."""
    q, k, v, eta, log_retention, w1, w2 = (t.double() for t in inputs(T=21))
    w1_ref, w2_ref = w1 * 0.7 + 0.1, w2 * 1.2
    got = deep_memory_chunk(q[:, :5], k[:, :5], v[:, :5], eta[:, :5], log_retention[:, :5], w1, w2,
                            w1_ref, w2_ref, return_error=True)
    with torch.enable_grad():
        want = oracle(q[:, :5], k[:, :5], v[:, :5], eta[:, :5], log_retention[:, :5], w1, w2, w1_ref, w2_ref)
    for name, a, b in zip(("output", "error", "w1", "w2"), got, want):
        assert rel(a, b) < 1e-10, name


def test_two_calls_equal_one():
    """A stream read in two pieces (split inside a chunk) equals one read, the reference carried (float64:
    the split chunk sums its decays in another order, so equal up to rounding)."""
    x = inputs(T=40, dtype=torch.float64)
    whole = run_chunks(*x, 16)
    output, error, w1, w2, w1_ref, w2_ref = run_chunks(*(t[:, :11] for t in x[:5]), *x[5:], 16)
    rest = run_chunks(*(t[:, 11:] for t in x[:5]), w1, w2, 16, position=11, reference=(w1_ref, w2_ref))
    assert rel(torch.cat([output, rest[0]], 1), whole[0]) < 1e-12
    assert rel(torch.cat([error, rest[1]], 1), whole[1]) < 1e-12
    for a, b in zip(rest[2:], whole[2:]):
        assert rel(a, b) < 1e-12


def test_chunk_size_changes_the_semantics():
    """Mini-batch gradients are a different rule from per-token ones: chunk 16 differs from chunk 1 (so the
    oracle comparisons above test the chunk semantics, not a rule that ignores them)."""
    x = inputs()
    assert rel(run_chunks(*x, 16)[0], run_chunks(*x, 1)[0]) > 1e-3


def test_zero_rate_keeps_the_weights_up_to_retention():
    q, k, v, eta, log_retention, w1, w2 = inputs(T=16)
    out = deep_memory_chunk(q, k, v, torch.zeros_like(eta), log_retention, w1, w2)
    decay = log_retention.sum(1).exp()[:, None, None]
    assert torch.allclose(out.w1, decay * w1, atol=1e-6) and torch.allclose(out.w2, decay * w2, atol=1e-6)
    # reads then come from the decayed start weights
    c = log_retention.cumsum(1)
    for t in (0, 7, 15):
        w1_t, w2_t = c[:, t].exp()[:, None, None] * w1, c[:, t].exp()[:, None, None] * w2
        assert torch.allclose(out.output[:, t:t + 1], mlp_read(q[:, t:t + 1], w1_t, w2_t), atol=1e-5)


def test_gradcheck_float64():
    """Closed-form gradients inside the kernel: training differentiates through them (second derivatives)."""
    q, k, v, eta, log_retention, w1, w2 = (t.double() for t in inputs(N=1, T=5, dk=6, dv=3, h=4))
    w1_ref, w2_ref = w1 + 0.3, w2 * 0.8
    args = [t.clone().requires_grad_() for t in (q, k, v, eta, log_retention, w1, w2, w1_ref, w2_ref, w1 - 0.2, w2 * 0.5)]
    fn = lambda *a: tuple(x for x in deep_memory_chunk(*a[:9], w1_anchor=a[9], w2_anchor=a[10], return_error=True)
                          if x is not None)
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6)


def test_gradients_match_autograd_through_the_oracle():
    """At the model's sizes' shape (keys wider than values): d loss / d inputs of the kernel equals
    autograd through the per-token oracle (whose inner gradient is itself autograd, create_graph)."""
    q, k, v, eta, log_retention, w1, w2 = (t.double() for t in inputs(N=1, T=12, dk=32, dv=4, h=4))
    leaves = [t.clone().requires_grad_() for t in (q, k, v, eta, log_retention, w1, w2)]
    probe = torch.randn(1, 12, 4, dtype=torch.double)
    out = deep_memory_chunk(*leaves, return_error=True)
    loss = (out.output * probe).sum() + out.w1.square().sum() + out.w2.sum() + out.error.square().sum()
    got = torch.autograd.grad(loss, leaves)
    leaves2 = [t.detach().clone().requires_grad_() for t in leaves]
    want_out = _differentiable_oracle(*leaves2)
    loss2 = (want_out[0] * probe).sum() + want_out[2].square().sum() + want_out[3].sum() + want_out[1].square().sum()
    want = torch.autograd.grad(loss2, leaves2)
    for a, b in zip(got, want):
        assert rel(a, b) < 1e-8


def _differentiable_oracle(q, k, v, eta, log_retention, w1, w2):
    """The oracle for N = 1, one chunk starting on the clock, differentiable: the inner gradient by
    autograd with create_graph, so outer gradients flow through it."""
    w1_ref, w2_ref = w1, w2
    W1, W2 = w1[0], w2[0]
    outputs, errors = [], []
    for t in range(k.shape[1]):
        z = w2_ref[0] @ k[0, t]
        hidden = F.silu(z)
        loss = 0.5 * (w1_ref[0] @ hidden - v[0, t]).square().sum()
        grad_w1, grad_w2 = torch.autograd.grad(loss, (w1_ref, w2_ref), create_graph=True)
        slope, = torch.autograd.grad(F.silu(z).sum(), z, create_graph=True)
        bound = hidden.square().sum() + k[0, t].square().sum() * (slope.square() * w1_ref[0].square().sum(0)).sum()
        rho = eta[0, t] / torch.clamp(bound, min=1.0)
        errors.append(v[0, t] - W1 @ F.silu(W2 @ k[0, t]))
        alpha = log_retention[0, t].exp()
        W1, W2 = alpha * W1 - rho * grad_w1[0], alpha * W2 - rho * grad_w2[0]
        outputs.append(W1 @ F.silu(W2 @ q[0, t]))
    return torch.stack(outputs)[None], torch.stack(errors)[None], W1[None], W2[None]


DEFAULT_RATE = float(torch.sigmoid(torch.tensor(2.0))) / 64  # the gate's start for a novel value, / chunk 64
DEFAULT_LOG_RETENTION = float(torch.log1p(-0.1 * torch.sigmoid(torch.tensor(-3.0))))  # retention ~0.995


def stream(n_keys, value_scale, fixed_values, T=16384, dk=1024, dv=128, h=128, C=64, seed=0,
           log_retention=DEFAULT_LOG_RETENTION, beta=None):
    """The shipped model's sizes (keys 1,024 wide, values and hidden 128) over T tokens at the default
    gates, retention toward the initial weights; keys drawn from ``n_keys`` unit keys (None: fresh ones),
    values random (``fixed_values``: one value per key); ``beta``: Titans momentum at that constant gate.
    Returns per-chunk weight norms and the mean ||error before the write|| / ||v||, and the final weights."""
    g = torch.Generator().manual_seed(seed)
    w1, w2 = torch.zeros(1, dv, h), torch.randn(1, h, dk, generator=g)
    anchors = (w1, w2)
    pool = l2norm(torch.randn(1, n_keys or T, dk, generator=g))
    pool_values = torch.randn(1, n_keys or T, dv, generator=g) * value_scale
    norms, errors = [], []
    # momentum as the module runs it: the gate constant, each step damped by 1 - beta
    rate = DEFAULT_RATE * (1 if beta is None else 1 - beta)
    momentum = {} if beta is None else dict(m1=torch.zeros_like(w1), m2=torch.zeros_like(w2),
                                            log_momentum_gate=torch.full((1, C), math.log(beta)))
    for c in range(T // C):
        index = torch.randint(0, pool.shape[1], (C,), generator=g) if n_keys else torch.arange(c * C, (c + 1) * C)
        k, q = pool[:, index], l2norm(torch.randn(1, C, dk, generator=g))
        v = pool_values[:, index] if fixed_values else torch.randn(1, C, dv, generator=g) * value_scale
        out = deep_memory_chunk(q, k, v, torch.full((1, C), rate), torch.full((1, C), log_retention),
                                w1, w2, w1_anchor=anchors[0], w2_anchor=anchors[1], return_error=True, **momentum)
        w1, w2 = out.w1, out.w2
        if beta is not None:
            momentum.update(m1=out.m1, m2=out.m2)
        norms.append((float(w1.norm()), float(w2.norm())))
        errors.append(float((out.error.norm(dim=-1) / v.norm(dim=-1)).mean()))
    return torch.tensor(norms), torch.tensor(errors), (w1, w2)


@pytest.mark.slow  # about 6 s per stream on a free core
@pytest.mark.parametrize("n_keys, value_scale", [(None, 1.0), (1, 100.0), (8, 1.0)])
def test_weights_stay_finite_and_bounded_over_16k_tokens(n_keys, value_scale):
    """Fresh random keys, one key written 16,384 times with values 100x larger, eight keys: the weights
    stay finite, W2 stays near its initial norm (neither diverging nor collapsing to the dead zero
    point), W1 levels off (second half no larger than 1.5x the first half's largest), and no write makes
    predictions worse than the empty memory's (error before the write <= 1.1 ||v||)."""
    norms, errors, weights = stream(n_keys, value_scale, fixed_values=False)
    assert all(torch.isfinite(w).all() for w in weights)
    half = len(norms) // 2
    assert norms[half:, 0].max() <= 1.5 * norms[:half, 0].max()
    assert ((norms[:, 1] / norms[0, 1]) - 1).abs().max() < 0.1
    assert errors.max() <= 1.1


@pytest.mark.slow
@pytest.mark.parametrize("n_keys, value_scale", [(None, 1.0), (1, 100.0)])
def test_momentum_weights_stay_finite_and_bounded_over_16k_tokens(n_keys, value_scale):
    """The same streams with momentum at its largest gate (beta 0.9), damped as the module runs it: the
    same bounds (undamped, a chunk's steps add up to ten times the bound, and one key's noise is overshot)."""
    norms, errors, weights = stream(n_keys, value_scale, fixed_values=False, beta=0.9)
    assert all(torch.isfinite(w).all() for w in weights)
    half = len(norms) // 2
    assert norms[half:, 0].max() <= 1.5 * norms[:half, 0].max()
    assert ((norms[:, 1] / norms[0, 1]) - 1).abs().max() < 0.1
    assert errors.max() <= 1.1


@pytest.mark.slow
def test_a_repeated_set_of_associations_is_learned():
    """Eight keys, each with its own fixed value, nothing forgotten (retention 1): the error before the
    write falls from the empty memory's (1) far down: the MLP memory stores what it is shown. (At the
    default retention it levels off where forgetting balances the 1/64 rate: docs/deep-memory.md.)"""
    norms, errors, _ = stream(8, 1.0, fixed_values=True, T=8192, log_retention=0.0)
    assert errors[0] > 0.9
    assert errors[-16:].mean() < 0.01  # measured 0.0003
