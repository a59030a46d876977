"""Bootstrap intervals, the result record, and the pass rules judged on numbers whose verdict is known."""
import json
import math

import numpy as np
import pytest
import torch

from nested_learning.validation import association
from nested_learning.validation.report import read_json, write_json
from nested_learning.validation.stats import Estimate, Result, bootstrap, bootstrap_ratio, exact, paired_difference


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    values = np.random.default_rng(1).normal(2.0, 1.0, size=200)
    estimate = bootstrap(values, seed=3)
    assert estimate.ci_low < estimate.mean < estimate.ci_high and estimate.n == 200
    assert estimate.mean == pytest.approx(values.mean())
    assert bootstrap(values, seed=3) == estimate  # seeded: a rerun gives the same interval
    # The interval's width is about 2 x 1.96 standard errors of the mean.
    standard_error = values.std(ddof=1) / math.sqrt(values.size)
    assert 0.7 < (estimate.ci_high - estimate.ci_low) / (2 * 1.96 * standard_error) < 1.3


def test_bootstrap_of_constant_nan_and_empty_values():
    assert bootstrap([0.5] * 10) == Estimate(0.5, 0.5, 0.5, 10)
    assert bootstrap([1.0, float("nan"), 1.0]).n == 2  # a unit without a measurement does not count
    empty = bootstrap([])
    assert empty.n == 0 and math.isnan(empty.mean)


def test_paired_difference_and_ratio():
    a = torch.arange(10.0)
    assert paired_difference(a, a) == Estimate(0.0, 0.0, 0.0, 10)
    assert paired_difference(a + 1, a).above(0.0)
    with pytest.raises(ValueError, match="same number of units"):
        paired_difference([1.0, 2.0], [1.0])
    half = bootstrap_ratio(a + 1, 2 * (a + 1))
    assert (half.mean, half.ci_low, half.ci_high) == pytest.approx((0.5, 0.5, 0.5))


def test_estimate_comparisons():
    e = Estimate(0.2, 0.1, 0.3, 50)
    assert e.above(0.05) and not e.above(0.1) and e.below(0.31)


def test_result_round_trips_through_strict_json(tmp_path):
    result = Result(name="x", title="X", claim="c", pass_rule="r", passed=False, seeds={"data": 0}, n_sequences=3,
                    metrics={"m": bootstrap([1.0, 2.0, 3.0]), "undefined": bootstrap([]), "count": exact(0, 3)},
                    tables={"t": [{"a": 1, "b": float("nan")}]}, checks={"ok": False}, runtime_s=0.5)
    data = result.to_dict()
    json.dumps(data, allow_nan=False)  # strict JSON: NaN became null
    assert data["metrics"]["undefined"]["mean"] is None and data["tables"]["t"][0]["b"] is None
    back = Result.from_dict(data)
    assert back.metrics["m"] == result.metrics["m"] and math.isnan(back.metrics["undefined"].mean)
    path = write_json(tmp_path / "r.json", [result], {"source": "test"})
    meta, results = read_json(path)
    assert meta == {"source": "test"} and results[0].name == "x" and not results[0].passed


def test_read_json_rejects_other_files_in_one_line(tmp_path):
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    (tmp_path / "broken.json").write_text("{not json")
    for name, message in [("other.json", "not a validation results file"), ("broken.json", "not a readable")]:
        with pytest.raises(ValueError, match=message) as error:
            read_json(tmp_path / name)
        assert "\n" not in str(error.value)


def _losses(readings, n=100, noise=0.05, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.tensor(readings) + noise * torch.randn(n, len(readings), generator=generator)


def test_association_rule_needs_above_chance_a_gain_over_swap_and_over_the_baseline():
    n = 200
    generator = torch.Generator().manual_seed(0)
    good = (torch.rand(n, generator=generator) < 0.6).float()
    chance = torch.zeros(n)
    chance[::10] = 1.0  # exactly one answer in ten: chance level
    assert all(association.judge(good, chance, chance)[1].values())
    checks = association.judge(good, good.clone())[1]  # the swap does as well: attention, not the memory
    assert checks["accuracy_above_chance"] and not checks["own_memory_beats_swap"]
    checks = association.judge(good, chance, good.clone())[1]  # no better than the baseline
    assert checks["own_memory_beats_swap"] and not checks["full_model_beats_baseline"]
    assert not association.judge(chance, torch.zeros(n))[1]["accuracy_above_chance"]


def test_markdown_report_states_verdicts_rules_and_numbers():
    from nested_learning.validation import markdown
    rows = [{"position": i} for i in range(100)]
    result = Result(name="x", title="7. Something", claim="It works.", pass_rule="PASS when it works.", passed=False,
                    seeds={"data": 3}, n_sequences=100, metrics={"gain": Estimate(0.25, 0.125, 0.5, 100)},
                    tables={"short": [{"a": 1.0, "b": "yes"}], "long": rows}, checks={"it_works": False},
                    notes=["a note"], runtime_s=1.0)
    text = markdown([result], {"source": "test model", "config": {}, "wall_time_s": 2.0, "threads": 1})
    assert "**0 of 1 properties hold**" in text and "## 7. Something: FAIL" in text
    assert "PASS when it works." in text and "it_works: NO" in text and "Seeds: data 3" in text
    assert "| gain | 0.25 | [0.125, 0.5] | 100 |" in text and "| 1 | yes |" in text
    assert "100 rows: in the JSON file." in text and "Note: a note" in text
