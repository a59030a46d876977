"""The attention-window view: the model run again up to a token reproduces the run, attention reads only
its window, and the memory's read is switched off for that token alone."""
import numpy as np
import pytest
import torch

from nested_learning import Ablation
from nested_learning.recording import record
from nested_learning.viz import attention_window as aw
from tests.conftest import tiny_model

TEXT = "The secret word is pelican. Some filler that runs on for a while. The secret word is pelican."


def test_the_view_reproduces_the_run_it_was_taken_from():
    """From a memory that earlier runs wrote: the token's loss is the recording's, keys before the run are
    labelled as such, attention's weights sum to one over the window and the persistent tokens."""
    model = tiny_model()
    _, state = record(model, "An earlier run wrote this.")
    recording, _ = record(model, TEXT, state=state)
    window, persistent = model.config.attention_window, model.config.n_persistent_tokens
    for t in (0, 5, len(TEXT) - 2):
        view = aw.window_view(model, recording, state, t)
        assert view.position == recording.start_position + t
        assert view.with_memory.loss == pytest.approx(float(recording.stream("loss")[t]), rel=1e-5)
        assert view.layers == (0, 1) and all(w.shape == (model.config.n_heads, persistent + window) for w in view.weights)
        assert all(np.allclose(w.sum(-1), 1, atol=1e-5) for w in view.weights)
        assert view.key_positions[persistent:] == tuple(range(view.position - window + 1, view.position + 1))
        earlier = [label for p, label in zip(view.key_positions, view.key_labels) if p is not None and p < recording.start_position]
        assert len(earlier) == max(0, window - 1 - t) and set(earlier) <= {"earlier run"}
        assert view.key_labels[-1] == TEXT[t]
        assert set(view.updates[0]) == set(aw.BRANCHES) and view.updates[0]["memory"] > 0
        assert view.without_memory is not None and view.without_memory.loss != view.with_memory.loss


def test_without_the_memory_there_is_nothing_to_switch_off():
    model = tiny_model()
    recording, _ = record(model, TEXT, ablation=Ablation(memory=False))
    view = aw.window_view(model, recording, None, 10)
    assert view.without_memory is None and "memory" not in view.updates[0]
    assert "Attention reads positions 0-10" in aw.explain(view, model.config.attention_window)
    assert aw.updates_table(view)[0]["memory"] != aw.updates_table(view)[0]["memory"]  # NaN: not in this run
    with pytest.raises(IndexError, match="outside this run"):
        aw.window_view(model, recording, None, recording.n_tokens)


def test_the_figure_has_a_row_of_heads_per_attention_layer():
    model = tiny_model()
    recording, _ = record(model, TEXT)
    view = aw.window_view(model, recording, None, 30)
    figure = aw.window_figure(view)
    assert len(figure.data) == 2 and all(list(trace.y) == ["head 0", "head 1"] for trace in figure.data)
    assert figure.layout.xaxis2.ticktext[-1].endswith(TEXT[30]) and figure.layout.xaxis2.ticktext[0] == "p0"
    assert torch.equal(torch.as_tensor(np.asarray(figure.data[0].z)), torch.as_tensor(view.weights[0]))
