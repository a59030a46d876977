"""A run's verdict: its loss against controls on the same tokens, with block-bootstrap intervals."""
import numpy as np
import pytest

from nested_learning import load_checkpoint
from nested_learning.recording import record
from nested_learning.viz import models
from nested_learning.viz import verdict as verdict_module
from nested_learning.viz.repeats import find_repeats, repeat_table
from nested_learning.viz.verdict import BASELINE, BLOCK, OTHER, RESET, UPDATES_OFF, block_difference, run_verdict
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


@pytest.mark.parametrize("seed", range(20))
def test_the_estimate_lies_inside_its_interval_however_unevenly_the_blocks_are_filled(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 12)) * BLOCK
    a, b = rng.normal(1.0, 1.0, n), np.zeros(n)
    mask = rng.random(n) < rng.choice([0.05, 0.3, 1.0])  # a few tokens in some blocks, many in others
    a[mask & (np.arange(n) < BLOCK)] += 5.0  # one heavy block: the unweighted block mean sits far off
    estimate = block_difference(a, b, mask, seed)
    assert estimate.mean == pytest.approx(float(a[mask].mean()))
    if estimate.n > 1:
        assert estimate.ci_low < estimate.mean < estimate.ci_high


def test_the_verdict_names_each_control_and_reads_the_same_tokens(model, monkeypatch):
    # A short other document: which tokens each control reads is the point here, not how much it read before.
    monkeypatch.setattr(verdict_module, "OTHER_DOCUMENT", "Rain fell on the harbour all night. " * 2)
    text = "the cat sat on the mat. " * 4
    first, state = record(model, "an earlier text the memory read")
    rec, _ = record(model, text, state=state)
    verdict = run_verdict(model, rec, state, tiny_model("transformer"))
    assert list(verdict.table["condition"]) == ["this run", UPDATES_OFF, BASELINE, RESET, OTHER]
    fresh, _ = record(model, text)
    reset = verdict.table.set_index("condition").loc[RESET]
    assert reset["mean loss (nats/byte)"] == pytest.approx(float(np.nanmean(fresh.stream("loss").double().numpy())))
    difference = float(np.nanmean(rec.stream("loss").double().numpy() - fresh.stream("loss").double().numpy()))
    assert verdict.estimates[RESET, "run"].mean == pytest.approx(difference)
    assert reset["run minus control"].startswith(f"{difference:+.3f} [")  # shown to people as "x [low, high]"
    frozen, _ = record(model, text, state=state, ablation=rec.ablation.replace(test_time_updates=False))
    assert verdict.estimates[UPDATES_OFF, "run"].mean == pytest.approx(float(np.nanmean(
        rec.stream("loss").double().numpy() - frozen.stream("loss").double().numpy())))
    gains = verdict.gains  # the tokens the writes helped most: the updates-off loss minus this run's, largest first
    lowered = frozen.stream("loss").double().numpy() - rec.stream("loss").double().numpy()
    assert len(gains) == 20 and list(gains["lowered by"]) == sorted(lowered[np.isfinite(lowered)], reverse=True)[:20]
    top = int(gains["token"].iloc[0])
    assert gains["byte predicted"].iloc[0] == text[top + 1] and gains["text before"].iloc[0].endswith(text[top])
    assert len(verdict.sentences) == 4 and all(s.startswith("Against ") for _, s in verdict.sentences)
    assert all("rules out" in s for _, s in verdict.sentences)  # each control says what beating it rules out
    assert np.isfinite(verdict.estimates[RESET, "repeats"].mean)  # the phrase repeats
    assert not verdict.table.isna().any().any()  # no "None" cells: every row has every column
    no_history = run_verdict(model, fresh, None)
    assert list(no_history.table["condition"]) == ["this run", UPDATES_OFF, OTHER]
    assert "test-time updates off" in no_history.headline[1]  # the answer comes from a control that cannot learn


FILLER = ["Farmers in the valley planted barley in spring and waited for rain through the long dry summer months. ",
          "A merchant from the coast brought salt, cloth and news of distant wars to the market square. ",
          "Children ran along the river bank, chasing the ducks and throwing pebbles into the slow brown water. ",
          "In winter the roads froze and the village was cut off for weeks, so people stored grain and firewood. ",
          "The baker rose before dawn to light his ovens, and the smell of bread drifted through the narrow streets. ",
          "Scholars at the monastery copied old books by candlelight, correcting errors that earlier scribes made. ",
          "When the fair came each autumn, musicians played in the square and travellers filled every inn. ",
          "The blacksmith repaired ploughs and shod horses, and his hammer rang out from morning until night. ",
          "Fishermen mended their nets on the beach, talking about the weather and the price of herring. ",
          "At the edge of the forest stood a ruined tower that nobody remembered building. ",
          "The mayor held meetings in the town hall, where arguments about taxes often lasted until midnight. ",
          "Old maps showed a road over the mountains, but few travellers dared to take it in bad weather. ",
          "Shepherds brought their flocks down from the hills when the first snow fell on the high pastures. ",
          "The miller ground the wheat into flour, and carts carried the sacks to towns along the river. ",
          "Letters took many days to arrive, and each one was read aloud to the whole family by the fire. ",
          "On quiet nights the only sounds were the wind in the trees and the distant barking of dogs. ",
          "A new bridge was built across the river, and trade between the two towns grew every year. ",
          "The weaver sold bright blankets dyed with plants gathered from the meadows near the lake. ",
          "Sailors told stories of storms and strange islands, and the children listened with wide eyes. ",
          "By the end of the century the village had become a small town with a school and a library. "]
SENTENCE = "The old lighthouse keeper climbed the spiral stairs every evening at dusk. "


def four_repeats() -> str:
    """About 2,000 bytes of prose with one sentence read four times, other sentences between the copies."""
    return "".join("".join(FILLER[5 * k:5 * k + 5]) + SENTENCE for k in range(4))


@pytest.mark.slow  # the shipped checkpoint and its baseline on 2,000 bytes, five conditions
def test_a_sentence_read_four_times_in_prose_is_three_repeats_and_the_verdict_says_the_memory_helped():
    text = four_repeats()
    assert 1900 <= len(text.encode()) <= 2400 and text.count(SENTENCE) == 4
    model = load_checkpoint(models.DEFAULT_CHECKPOINT, device="cpu").eval()
    rec, _ = record(model, text)
    found = find_repeats(rec.tokens.tolist())
    assert [text.encode()[r.start:r.start + r.length].decode() for r in found] == [SENTENCE] * 3  # no chance overlaps
    costs = repeat_table(rec, found)
    assert list(costs["loss repeat"]) == sorted(costs["loss repeat"], reverse=True)  # each copy cheaper: what people see
    verdict = run_verdict(model, rec, None, models.build_baseline("cpu"))
    helped, headline = verdict.headline
    assert helped and headline.startswith("Test-time learning helped"), headline
    for control in (UPDATES_OFF, BASELINE):  # neither can learn the sentence within the run; this run did
        assert verdict.estimates[control, "repeats"].below(0)
    for estimate in verdict.estimates.values():
        assert estimate.ci_low < estimate.mean < estimate.ci_high
