"""model.generate: continues a prompt from a memory state, reading its own output, reproducibly."""
import pytest
import torch

from tests.conftest import random_tokens, tiny_model


def test_greedy_generation_is_what_one_call_over_the_whole_text_predicts():
    model = tiny_model()
    prompt = random_tokens(2, 20)
    out = model.generate(prompt, max_new_tokens=12)
    assert out.tokens.shape == (2, 12) and out.state.position == 32
    full = torch.cat([prompt, out.tokens], 1)
    with torch.no_grad():
        reference = model(full)
    assert torch.equal(reference.logits[:, 19:31].argmax(-1), out.tokens)  # each token the argmax after the ones before
    for name, tensor in reference.state.tensors().items():  # the memory read its own output too
        assert torch.allclose(out.state.tensors()[name], tensor, atol=1e-5, rtol=1e-4), name


def test_generation_continues_a_carried_state():
    model = tiny_model()
    first, prompt = random_tokens(1, 30, seed=1), random_tokens(1, 5, seed=2)
    with torch.no_grad():
        state = model(first).state
    carried = model.generate(prompt, state=state, max_new_tokens=8)
    with torch.no_grad():
        reference = model(torch.cat([first, prompt], 1))
    assert int(carried.tokens[0, 0]) == int(reference.logits[0, -1].argmax())
    assert state.position == 30  # the caller's state is not modified


def test_sampling_is_seeded_and_parameters_never_move():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prompt = random_tokens(1, 10)
    a = model.generate(prompt, max_new_tokens=20, temperature=1.0, seed=3).tokens
    b = model.generate(prompt, max_new_tokens=20, temperature=1.0, seed=3).tokens
    c = model.generate(prompt, max_new_tokens=20, temperature=1.0, seed=4).tokens
    assert torch.equal(a, b) and not torch.equal(a, c)
    top1 = model.generate(prompt, max_new_tokens=5, temperature=2.0, top_k=1, seed=5).tokens
    assert torch.equal(top1, model.generate(prompt, max_new_tokens=5).tokens)  # top-1 sampling is greedy
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert model.generate(prompt, max_new_tokens=0).tokens.shape == (1, 0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_new_tokens=-1), "max_new_tokens"), (dict(max_new_tokens=10**9), "max_new_tokens"),
    (dict(temperature=float("nan")), "temperature"), (dict(temperature=-1.0), "temperature"),
    (dict(top_k=0), "top_k"), (dict(tokens=torch.zeros(1, 0, dtype=torch.long)), "at least one prompt token"),
])
def test_bad_settings_are_one_line(kwargs, message):
    model = tiny_model()
    tokens = kwargs.pop("tokens", random_tokens(1, 4))
    with pytest.raises(ValueError, match=message):
        model.generate(tokens, **kwargs)
