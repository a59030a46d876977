"""memory_depth 2: the paper's MLP memory inside the model (kernel tests: tests/ops/test_deep_memory.py)."""
import pytest
import torch

from nested_learning import Ablation, HopeConfig
from nested_learning.recording import Recording
from nested_learning.recording.recorder import record
from nested_learning.validation.controls import replace_memory, reset_memory
from tests.conftest import random_tokens, tiny_model
from tests.support.streaming import assert_calls_equal_one_call
from tests.ops.test_deep_memory import oracle



def deep_model(preset="hope", **overrides):
    return tiny_model(preset, memory_depth=2, **overrides)


def test_config_field():
    assert HopeConfig().memory_depth == 1 and HopeConfig.preset("hope").memory_depth == 1
    assert HopeConfig.from_dict({"memory_depth": 2}).memory_depth == 2
    with pytest.raises(ValueError, match=r"config.memory_depth must be a positive integer at most 2"):
        HopeConfig(memory_depth=3)
    assert HopeConfig.preset("hope-paper", memory_depth=2).momentum  # the paper's preset with its MLP memory


def test_depth_one_state_has_no_hidden_layer():
    state = tiny_model().init_state(1)
    assert all(layer.memory.hidden_memory is None and layer.memory.hidden_reference is None for layer in state.layers)


@pytest.mark.parametrize("key_expansion", [1, 4])
def test_forward_backward_reaches_every_memory_parameter(key_expansion):
    """Training differentiates through the writes: the initial weights of both layers, the gates (whose
    rates only act through the writes) and the projections get finite, nonzero gradients."""
    model = deep_model(key_expansion=key_expansion).train()
    out = model(random_tokens(2, 40))
    memory = model.blocks[0].memory
    assert memory.initial_memory.shape == (2, 16, 16)  # W1 [H, d, h = d]
    assert memory.initial_hidden_memory.shape == (2, 16, 16 * key_expansion)  # W2 [H, h, dk]
    state = out.state.layers[0].memory
    assert state.memory.shape == (2, 2, 16, 16) and state.hidden_memory.shape == (2, 2, 16, 16 * key_expansion)
    out.logits.logsumexp(-1).mean().backward()
    for name in ("initial_memory", "initial_hidden_memory", "gates.weight", "surprise_weight", "in_proj.weight"):
        grad = memory.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


@pytest.mark.parametrize("preset, momentum", [("hope", False), ("hope-paper", False), ("hope-paper", True)])
def test_streaming_equals_one_call(preset, momentum):
    """Calls split inside memory chunks (chunk 8) carry both layers, their chunk-start references and
    (the paper's preset) both momenta."""
    model = deep_model(preset, momentum=momentum, dtype=torch.float64, attention_window=12, cms_periods=(1, 3, 8))
    assert_calls_equal_one_call(model, random_tokens(2, 67), atol=1e-10)


def test_trace_rebuilds_with_the_per_token_oracle():
    """The model's writes are the kernel's semantics: from the recorded keys, values, rates and
    retentions the per-token oracle (mini-batch gradients at each chunk's start, rate / chunk size,
    retention toward the learned initial weights) rebuilds the final W1, W2, and the surprise is its
    error before each write, ||v_t - M_{t-1}(k_t)|| with the residual (the unit key)."""
    model = deep_model(dtype=torch.float64)
    with torch.no_grad():
        out = model(random_tokens(1, 20), trace=True)
    memory, item, chunk = model.blocks[0].memory, out.trace.layers[0].memory, model.config.memory_chunk_size
    fold = lambda x: x[0]  # batch 1: heads on the first axis
    k, v, unit = fold(item.keys), fold(item.values), fold(item.unit_keys)
    eta, log_retention = fold(item.learning_rate) / chunk, fold(item.retention).log()
    w1, w2 = memory.initial_memory.detach(), memory.initial_hidden_memory.detach()
    anchors, surprises = (w1, w2), []
    with torch.enable_grad():
        for a in range(0, 20, chunk):
            part = lambda x: x[:, a:a + chunk]
            _, error, w1, w2 = oracle(part(k), part(k), part(v - unit), part(eta), part(log_retention), w1, w2, w1, w2,
                                      anchors=anchors)
            surprises.append(error.norm(dim=-1))
    final = out.state.layers[0].memory
    torch.testing.assert_close(final.memory[0], w1.detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(final.hidden_memory[0], w2.detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(item.surprise[0], torch.cat(surprises, 1).detach(), rtol=1e-9, atol=1e-12)


def test_updates_off_keeps_both_layers_and_reads_the_initial_memory():
    model = deep_model()
    start = model.init_state(1)
    with torch.no_grad():
        off = model(random_tokens(1, 30), ablation=Ablation(test_time_updates=False))
        on = model(random_tokens(1, 30))
    for before, after in zip(start.layers, off.state.layers):
        assert torch.equal(before.memory.memory, after.memory.memory)
        assert torch.equal(before.memory.hidden_memory, after.memory.hidden_memory)
    assert not torch.equal(start.layers[0].memory.hidden_memory, on.state.layers[0].memory.hidden_memory)
    assert not torch.equal(start.layers[0].memory.memory, on.state.layers[0].memory.memory)


@pytest.mark.parametrize("switch", ["test_time_updates", "retention", "adaptive_lr", "self_modification", "memory"])
def test_each_memory_switch_changes_the_output(switch):
    model = deep_model()
    tokens = random_tokens(1, 40)
    with torch.no_grad():
        assert not torch.allclose(model(tokens).logits, model(tokens, ablation=Ablation(**{switch: False})).logits)


def test_controls_replace_both_layers():
    """Another sequence's memory, or the reset memory, replaces W2 and its reference too."""
    model = deep_model()
    with torch.no_grad():
        state = model(random_tokens(2, 30)).state
    other = model.init_state(2)
    swapped = replace_memory(state, other).layers[0].memory
    assert torch.equal(swapped.hidden_memory, other.layers[0].memory.hidden_memory)
    assert torch.equal(swapped.hidden_reference, other.layers[0].memory.hidden_reference)
    reset = reset_memory(state, model).layers[0].memory
    assert torch.equal(reset.hidden_memory, model.init_state(2).layers[0].memory.hidden_memory)


@pytest.mark.parametrize("chunk, momentum", [(4, False), (64, False), (4, True)])
def test_recording_rebuilds_both_matrices_as_the_model_holds_them(chunk, momentum):
    """Every W1_t and W2_t rebuilt from the recorded factors equals the model's state after token t (chunks
    cut mid-way by the prefix, and a recording that starts mid-chunk, with momentum carried in); the norm
    streams are theirs."""
    model = deep_model(memory_chunk_size=chunk, momentum=momentum)
    if momentum:  # W1 starts at zero, so W2 would get no step (nor momentum) before W1 has one
        with torch.no_grad():
            for block in model.blocks:
                block.memory.initial_memory.normal_(0, 0.1)
    tokens = random_tokens(1, 29)[0]
    with torch.no_grad():
        start = model(tokens[None, :3]).state  # a recording that starts inside a chunk
    recording, _ = record(model, tokens[3:], state=start)
    assert recording.memory_matrices(0) == ("memory", "hidden_memory")
    for t in (0, 5, 12, 25):
        with torch.no_grad():
            state = model(tokens[None, :t + 4]).state
        for layer, head in ((0, 0), (1, 1)):
            expected = state.layers[layer].memory
            w1, w2 = (recording.memory_matrix(layer, head, t, m) for m in ("memory", "hidden_memory"))
            assert torch.allclose(w1, expected.memory[0, head].double(), rtol=1e-4, atol=1e-5)
            assert torch.allclose(w2, expected.hidden_memory[0, head].double(), rtol=1e-4, atol=1e-5)
            stream = lambda name: float(recording.memory_stream(layer, name)[t, head])
            assert stream("memory_norm") == pytest.approx(w1.norm().item(), rel=1e-4)
            assert stream("hidden_memory_norm") == pytest.approx(w2.norm().item(), rel=1e-4)
            assert stream("hidden_write_norm") == pytest.approx(
                recording.memory_delta(layer, head, t, "hidden_memory").norm().item(), rel=1e-3, abs=1e-6)
            assert stream("write_norm") == pytest.approx(recording.memory_delta(layer, head, t).norm().item(), rel=1e-3, abs=1e-6)
    assert recording.memory_stream(0, "write_rate").gt(0).all()  # every token wrote
    assert torch.equal(recording.memory_matrix(1, 0, -1, "hidden_memory"), start.layers[1].memory.hidden_memory[0, 0].double())
    if momentum:  # the momenta carried in from the prefix are what the replay starts from
        assert start.layers[1].memory.hidden_momentum.abs().sum() > 0
        assert torch.equal(recording.memory_stream(1, "initial.hidden_momentum"), start.layers[1].memory.hidden_momentum[0])


def test_a_deep_momentum_recording_reads_back_from_its_file(tmp_path):
    """With momentum the file holds both matrices' starting momenta and the gate, and W2 rebuilds from it;
    a file without W2's momentum is refused."""
    recording, _ = record(deep_model(momentum=True), random_tokens(1, 20)[0])
    loaded = Recording.load(recording.save(tmp_path / "momentum.safetensors"))
    assert torch.equal(loaded.memory_matrix(1, 1, 17, "hidden_memory"), recording.memory_matrix(1, 1, 17, "hidden_memory"))
    without = Recording(recording.config, {k: v for k, v in recording.tensors.items()
                                           if k != "layers.0.memory.initial.hidden_momentum"})
    with pytest.raises(ValueError, match="lacks tensor 'layers.0.memory.initial.hidden_momentum'"):
        Recording.load(without.save(tmp_path / "broken.safetensors"))


def test_a_deep_recording_keeps_surprise_its_meaning_and_reads_back_from_its_file(tmp_path):
    """surprise is ||v_t - M_{t-1}(k_t)||, M the whole memory (residual included) before the write; the file
    loads back with every stream, and refuses one without the factors that rebuild W2."""
    model = deep_model()
    tokens = random_tokens(1, 20)[0]
    recording, _ = record(model, tokens, full_states=True)
    t, head = 11, 1
    w1, w2 = (recording.memory_matrix(0, head, t - 1, m) for m in ("memory", "hidden_memory"))
    unit_key = recording.memory_stream(0, "unit_keys")[t, head].double()
    key = recording.memory_stream(0, "keys")[t, head].double()
    before = unit_key + w1 @ torch.nn.functional.silu(w2 @ key)
    value = recording.memory_stream(0, "values")[t, head].double()
    assert float(recording.memory_stream(0, "surprise")[t, head]) == pytest.approx((value - before).norm().item(), rel=1e-4)
    factors_only = Recording(recording.config, {k: v for k, v in recording.tensors.items() if not k.startswith("full.")})
    for matrix in ("memory", "hidden_memory"):  # full_states: every W_t in float16, what the factors rebuild
        full = recording.stream(f"full.layers.0.memory.{matrix}")[t, head].double()
        assert torch.allclose(full, factors_only.memory_matrix(0, head, t, matrix), rtol=2e-3, atol=2e-3)
    path = recording.save(tmp_path / "deep.safetensors")
    loaded = Recording.load(path)
    assert torch.equal(loaded.memory_matrix(0, head, t, "hidden_memory"), recording.memory_matrix(0, head, t, "hidden_memory"))
    assert set(loaded.per_token().columns) >= {"write_rate", "hidden_memory_norm", "hidden_write_norm", "surprise"}
    without = Recording(recording.config, {k: v for k, v in recording.tensors.items()
                                           if k != "layers.1.memory.hidden_errors" and not k.startswith("full.")})
    with pytest.raises(ValueError, match="lacks tensor 'layers.1.memory.hidden_errors'"):
        Recording.load(without.save(tmp_path / "broken.safetensors"))


def test_a_deep_recording_with_updates_off_writes_nothing():
    recording, _ = record(deep_model(), random_tokens(1, 12)[0], ablation=Ablation(test_time_updates=False))
    for matrix in ("memory", "hidden_memory"):
        assert torch.equal(recording.memory_matrix(0, 0, 11, matrix), recording.memory_matrix(0, 0, -1, matrix))
    assert recording.memory_stream(0, "write_rate").eq(0).all() and recording.memory_stream(0, "surprise").gt(0).all()
