"""Module exactness checks the kernel the model runs, called the way the model calls it."""
import torch

from nested_learning.ops import gated_delta_chunk
from nested_learning.validation import exactness


def test_exactness_runs_the_models_kernel_as_the_model_calls_it(monkeypatch):
    """It calls gated_delta_chunk (the self-modifying memory's kernel) per chunk on folded heads with
    M k handed in and values narrower than keys by the shipped key expansion; and a kernel that writes
    wrongly fails it (the check can see failure)."""
    calls = []

    def spy(q, k, v, eta, log_retention, memory, memory_keys=None, **kwargs):
        calls.append((k.shape, v.shape, memory_keys is not None, kwargs.get("log_retention_floor")))
        return gated_delta_chunk(q, k, v, eta, log_retention, memory, memory_keys, **kwargs)

    monkeypatch.setattr(exactness, "gated_delta_chunk", spy)
    result = exactness.run(trials=2, key_dim=64)
    assert result.passed and result.checks["model_kernel_exact"]
    assert len(calls) == 2 * 64 // exactness.KERNEL_CHUNK  # several chunks per trial, the memory carried
    assert all(k == (1, exactness.KERNEL_CHUNK, 64) and v == (1, exactness.KERNEL_CHUNK, 8) and handed and floor < 0
               for k, v, handed, floor in calls)

    def half_rate(q, k, v, eta, *args, **kwargs):  # a kernel that writes at half the asked rate
        return gated_delta_chunk(q, k, v, eta * 0.5, *args, **kwargs)

    monkeypatch.setattr(exactness, "gated_delta_chunk", half_rate)
    broken = exactness.run(trials=2, key_dim=64)
    assert not broken.passed and not broken.checks["model_kernel_exact"]
