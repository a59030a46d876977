"""The memory probe: M_t queried with earlier keys, compared with the values written then."""
import numpy as np
import pytest
import torch

from nested_learning.recording import record
from nested_learning.viz.probe import recall_curve, recall_figure
from tests.support.keys import with_stored_writes


def test_the_curve_is_the_cosine_of_each_earlier_read_with_its_value(model):
    rec, _ = record(model, "the cat sat on the mat. the cat sat")
    t = 20
    curve = recall_curve(rec, 1, t)
    assert curve.shape == (model.config.n_heads, t + 1)
    memory = rec.memory_matrix(1, 1, t)
    k, v = rec.stream("layers.1.memory.keys")[7, 1].double(), rec.stream("layers.1.memory.values")[7, 1].double()
    read = memory @ k
    assert curve[1, 7] == pytest.approx(float(torch.nn.functional.cosine_similarity(read, v, dim=0)))
    assert np.all(np.abs(curve[np.isfinite(curve)]) <= 1 + 1e-9)
    assert len(recall_figure(curve).data) == model.config.n_heads
    with pytest.raises(IndexError, match="head 2 is outside this model"):
        rec.memory_matrix(1, 2, t)


def test_a_recording_without_values_says_so(model):
    rec = with_stored_writes(record(model, "abcdef")[0])
    del rec.tensors["layers.0.memory.values"]  # as recordings made before values were kept
    with pytest.raises(KeyError, match="no values"):
        recall_curve(rec, 0, 3)


def test_specificity_subtracts_the_match_with_every_value(model):
    rec, _ = record(model, "the cat sat on the mat. the cat sat")
    plain, specific = recall_curve(rec, 0, 20), recall_curve(rec, 0, 20, specific=True)
    memory = rec.memory_matrix(0, 1, 20)
    keys, values = rec.stream("layers.0.memory.keys")[:21, 1].double(), rec.stream("layers.0.memory.values")[:21, 1].double()
    read = torch.nn.functional.normalize(keys[4] @ memory.T, dim=0)
    others = float((torch.nn.functional.normalize(values, dim=-1) @ read).mean())
    assert specific[1, 4] == pytest.approx(plain[1, 4] - others)
