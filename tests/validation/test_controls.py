"""Memory controls: only the fast weights move; the window's context stays the sequence's own."""
import torch

from nested_learning import Ablation
from nested_learning.validation.controls import replace_memory, reset_memory, swapped_memory
from tests.conftest import random_tokens, tiny_model


def read(model, tokens):
    with torch.no_grad():
        return model(tokens)


def test_swap_moves_every_fast_weight_and_nothing_else():
    model = tiny_model()
    state = read(model, random_tokens(3, 21)).state
    swapped = swapped_memory(state)
    for name, tensor in state.tensors().items():
        moved = swapped.tensors()[name]
        fast = name.endswith((".memory.memory", ".memory.reference", ".pending")) or ".projections." in name \
            or (".cms." in name and name.endswith(".memory"))
        if fast:
            assert torch.equal(moved, tensor[[1, 2, 0]]), name
        else:  # attention cache, conv history, CMS previous inputs: the sequence's own local context
            assert torch.equal(moved, tensor), name
    assert swapped.position == state.position


def test_reset_gives_the_learned_initial_fast_weights():
    model = tiny_model()
    state = read(model, random_tokens(2, 19)).state
    reset = reset_memory(state, model).tensors()
    initial = model.init_state(2).tensors()
    assert torch.equal(reset["layers.0.memory.memory"], initial["layers.0.memory.memory"])
    assert torch.equal(reset["layers.1.cms.2.memory"], initial["layers.1.cms.2.memory"])
    assert torch.equal(reset["layers.1.attention.keys"], state.tensors()["layers.1.attention.keys"])


def test_controls_change_predictions_only_through_the_memories():
    model = tiny_model()
    tokens = random_tokens(2, 40)
    state = read(model, tokens[:, :30]).state
    with torch.no_grad():
        own = model(tokens[:, 30:], state=state).logits
        swapped = model(tokens[:, 30:], state=swapped_memory(state)).logits
        no_memories = Ablation(memory=False, cms=False)
        plain = model(tokens[:, 30:], state=state, ablation=no_memories).logits
        plain_swapped = model(tokens[:, 30:], state=swapped_memory(state), ablation=no_memories).logits
    assert (own - swapped).abs().max() > 1e-3
    assert torch.equal(plain, plain_swapped)  # without the memories a swap changes nothing
    assert torch.equal(replace_memory(state, state).tensors()["layers.0.memory.memory"], state.tensors()["layers.0.memory.memory"])
