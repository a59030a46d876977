"""A run's verdict: its loss against controls on the same tokens, with block-bootstrap intervals."""
import numpy as np
import pytest

from nested_learning.recording import record
from nested_learning.viz.verdict import BLOCK, block_difference, run_verdict
from tests.conftest import tiny_model


def test_block_difference_is_the_token_mean_with_an_interval_over_blocks():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 0.1, 10 * BLOCK)
    estimate = block_difference(a, a - 0.5)
    assert estimate.mean == pytest.approx(0.5) and estimate.n == 10 and estimate.ci_low <= 0.5 <= estimate.ci_high
    mask = np.zeros(a.size, dtype=bool)
    mask[:BLOCK] = True
    assert block_difference(a, a - 0.5, mask).n == 1
    a[3] = np.nan  # the run's last token has no loss
    assert np.isfinite(block_difference(a, a).mean)


def test_the_verdict_names_each_control_and_reads_the_same_tokens(model):
    text = "the cat sat on the mat. " * 4
    first, state = record(model, "an earlier text the memory read")
    rec, _ = record(model, text, state=state)
    verdict = run_verdict(model, rec, state, tiny_model("transformer"))
    assert list(verdict.table["condition"]) == ["this run", "reset memory", "another document's memory",
                                               "baseline transformer"]
    fresh, _ = record(model, text)
    reset = verdict.table.set_index("condition").loc["reset memory"]
    assert reset["mean loss"] == pytest.approx(float(np.nanmean(fresh.stream("loss").double().numpy())))
    assert reset["run minus control"] == pytest.approx(float(np.nanmean(rec.stream("loss").double().numpy()
                                                                           - fresh.stream("loss").double().numpy())))
    assert len(verdict.sentences) == 3 and all(s.startswith("Against ") for _, s in verdict.sentences)
    assert np.isfinite(reset["on repeats: run minus control"])  # the phrase repeats
    no_history = run_verdict(model, fresh, None)
    assert list(no_history.table["condition"]) == ["this run", "another document's memory"]
