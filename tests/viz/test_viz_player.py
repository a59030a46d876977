"""The memory player's payload: the browser replays pooled memories from it, so the replay must give the
exact memory, block-averaged, at every token (with and without Titans momentum)."""
import numpy as np
import pytest
import torch

from nested_learning.recording import record
from nested_learning.viz.player import (key_block, payload, pooled, pooling_matrix, read_payload,
                                        replay_pooled)
from tests.conftest import tiny_model

TEXT = "the cat sat on the mat. the cat sat on the mat. a dog!"


def test_pooling_averages_blocks_and_keeps_a_short_last_block():
    assert key_block(1024) == 8 and key_block(128) == 1 and key_block(130) == 2
    pool = pooling_matrix(5, 2)  # blocks {0, 1}, {2, 3}, {4}
    matrix = torch.tensor([[1.0, 3.0, -2.0, 2.0, 7.0]])
    assert torch.equal(pooled(matrix, 2), torch.tensor([[2.0, 0.0, 7.0]], dtype=torch.float64))
    assert pool.shape == (5, 3) and torch.allclose(pool.sum(0), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("preset", ["hope", "titans"])
def test_the_replayed_payload_is_the_pooled_memory_at_every_token(preset):
    recording, _ = record(tiny_model(preset, key_expansion=4) if preset == "hope" else tiny_model(preset), TEXT)
    layer, head = recording.memory_layers[-1], 1
    header, arrays = read_payload(payload(recording, layer, head, "run-1", columns=16))
    key_width = recording.memory_stream(layer, "keys").shape[-1]
    assert header["run"] == "run-1" and header["block"] == key_block(key_width, 16) and header["momentum"] == (preset == "titans")
    assert header["columns"] == -(-key_width // header["block"]) and header["tokens"] == recording.tokens.tolist()
    for t in (-1, 0, 5, recording.n_tokens - 1):
        exact = pooled(recording.memory_matrix(layer, head, t), header["block"]).numpy()
        np.testing.assert_allclose(replay_pooled(header, arrays, t), exact, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(arrays["loss"], recording.stream("loss").numpy())
    np.testing.assert_array_equal(arrays["topk_ids"], recording.stream("topk.ids").numpy())  # the guesses shown
    np.testing.assert_array_equal(arrays["topk_probs"], recording.stream("topk.probs").numpy())
    surprise = recording.memory_stream(layer, "surprise").double().mean(1).numpy()
    np.testing.assert_allclose(arrays["summary"][-1, 0], surprise, rtol=1e-6)


@pytest.mark.parametrize("matrix, symbol", [("memory", "W1"), ("hidden_memory", "W2")])
def test_the_2_layer_memorys_payloads_replay_each_matrix_around_its_anchor(matrix, symbol):
    """memory_depth 2: W_t = a_t W_{t-1} + (1 - a_t) A + u_t k_t^T, replayed as the browser does, gives each
    pooled matrix at every token; the header names its rows and columns."""
    model = tiny_model("hope", memory_depth=2, key_expansion=4)
    with torch.no_grad():  # W1's anchor starts at zero; training moves it (a zero anchor would test nothing)
        model.blocks[1].memory.initial_memory.normal_(0, 0.3)
    recording, _ = record(model, TEXT)
    layer, head = 1, 0
    header, arrays = read_payload(payload(recording, layer, head, "run-1", columns=16, matrix=matrix))
    assert header["anchor"] and header["matrix"] == matrix and header["symbol"] == symbol
    assert (header["row_name"], header["column_name"]) == (("value dim", "hidden unit") if symbol == "W1" else ("hidden unit", "key dim"))
    assert np.abs(arrays["anchor"]).max() > 0.1
    for t in (-1, 0, 9, recording.n_tokens - 1):
        exact = pooled(recording.memory_matrix(layer, head, t, matrix), header["block"]).numpy()
        np.testing.assert_allclose(replay_pooled(header, arrays, t), exact, rtol=1e-4, atol=1e-5)
    with pytest.raises(KeyError, match="no recorded memory"):  # a linear memory has no W2
        payload(record(tiny_model("hope"), TEXT)[0], 0, 0, "r", matrix="hidden_memory")


def test_a_payload_is_about_one_pooled_row_and_write_per_token():
    recording, _ = record(tiny_model("hope", key_expansion=8), TEXT * 4)
    data = payload(recording, 0, 0, "r", columns=16)
    header, arrays = read_payload(data)
    per_token = 4 * (header["rows"] + header["columns"] + 2 + 3 * len(header["memory_layers"]))
    assert len(data) < per_token * recording.n_tokens + 4 * header["rows"] * header["columns"] + 40_000
    with pytest.raises(ValueError, match="not a memory player payload"):
        read_payload(b"JUNK" + data[4:])
    with pytest.raises(KeyError, match="no recorded memory"):
        payload(record(tiny_model("transformer"), TEXT)[0], 0, 0, "r")
