"""Learn-page demos compute what they say."""
import numpy as np
import pandas as pd
import pytest
import torch

from nested_learning import Ablation
from nested_learning.recording import record
from nested_learning.viz import lessons
from tests.conftest import tiny_model


def test_bad_lines_are_named_up_to_a_limit_then_counted():
    pairs, notices = lessons.parse_store("cat = meow\n" + "junk\n" * 20_000)
    assert pairs == [("cat", "meow")] and len(notices) == lessons.MAX_NOTICES + 1
    assert notices[0] == "line 2 is not 'key = value': skipped." and notices[-1].startswith("19995 more lines")


def test_parse_store():
    pairs, notices = lessons.parse_store("cat = meow\nbad line\n\n = x\ncat = purr\ndog=woof")
    assert pairs == [("cat", "purr"), ("dog", "woof")]  # a later line for a key replaces the earlier one
    assert notices == ["line 2 is not 'key = value': skipped.", "line 4 is not 'key = value': skipped."]
    many, notices = lessons.parse_store("\n".join(f"k{i} = v" for i in range(40)))
    assert len(many) == lessons.MAX_PAIRS and "only the first" in notices[0]


def test_word_vectors_are_deterministic_and_share_letters():
    cat, cats, fish = (lessons.word_vector(w, 16) for w in ("cat", "cats", "fish"))
    torch.testing.assert_close(cat, lessons.word_vector("cat", 16))
    assert float(cat.norm()) == pytest.approx(1.0)
    assert float(cat @ cats) > abs(float(cat @ fish))


def test_delta_rule_fixes_what_hebbian_cannot():
    pairs, _ = lessons.parse_store(lessons.DEFAULT_STORE)
    one = lessons.hebbian_vs_delta(pairs, passes=1)
    three = lessons.hebbian_vs_delta(pairs, passes=3)
    assert list(one["key"]) == [k for k, _ in pairs] and list(one["stored"]) == [v for _, v in pairs]
    # The last pair written is exact under the delta rule; more passes shrink every delta error.
    assert one["delta error"].iloc[-1] < 1e-9
    assert (three["delta error"] <= one["delta error"] + 1e-12).all()
    assert three["hebbian error"].mean() > one["hebbian error"].mean()  # Hebbian writes only pile up
    assert (lessons.hebbian_vs_delta(pairs, passes=5)["delta recalls"] == three["stored"]).all()
    assert lessons.hebbian_vs_delta([]).empty


def test_the_store_lesson_checks_its_claims_and_says_when_one_fails():
    pairs, _ = lessons.parse_store(lessons.DEFAULT_STORE)
    curve = lessons.passes_curve(pairs)
    assert list(curve["passes"]) == list(range(1, lessons.MAX_PASSES + 1))
    table = lessons.hebbian_vs_delta(pairs, passes=2)
    assert curve.loc[1, "delta error"] == pytest.approx(table["delta error"].mean())
    # At its default the lesson shows every claim on the default store ...
    assert all(holds for holds, _ in lessons.store_verdict(curve, lessons.DEFAULT_PASSES))
    # ... and written once, the delta rule recalls fewer right here: said plainly, with the numbers.
    holds, sentence = lessons.store_verdict(curve, 1)[-1]
    assert not holds and "Hebbian 83%, delta rule 67%" in sentence and "from 2 passes on" in sentence


def test_repetition_table_is_the_recordings_means(model):
    rec, table = lessons.repetition(model, "abcd", 3)
    assert list(table["copy"]) == [1, 2, 3]
    for layer in (0, 1):  # each memory layer on its own: a mean over layers hides a still one
        surprise = rec.stream(f"layers.{layer}.memory.surprise").double().mean(1)
        np.testing.assert_allclose(table[f"surprise, layer {layer}"],
                                   [float(surprise[i * 4:(i + 1) * 4].mean()) for i in range(3)])
        rate = rec.stream(f"layers.{layer}.memory.learning_rate").double().mean(1)
        np.testing.assert_allclose(table[f"learning rate, layer {layer}"],
                                   [float(rate[i * 4:(i + 1) * 4].mean()) for i in range(3)])


def test_cms_rates_count_updates_per_period(model):
    rec, _ = record(model, "x" * 37)
    table, fig = lessons.cms_rates(rec, layer=1)
    assert list(table["updates"]) == [37 // p for p in (1, 2, 4, 8)]
    assert len(fig.data[0].x) == table["updates"].sum()


@pytest.mark.parametrize("periods, tokens", [((1, 2, 4, 8), 96), ((4, 64), 128), ((16, 1024), 2048), ((1, 4096), 2048)])
def test_the_cms_lesson_reads_until_the_slowest_level_has_updated_twice(periods, tokens):
    """The lesson's run is sized by the model's periods (within one run): a level that never updates in it
    would show nothing and make the class's prediction unanswerable."""
    recording = lessons.cms_run(tiny_model(cms_periods=periods))
    table, _ = lessons.cms_rates(recording, layer=0)
    assert recording.n_tokens == tokens
    assert list(table["updates"]) == [tokens // p for p in periods]
    if 2 * max(periods) <= tokens:
        assert table["updates"].min() >= 2 and table["mean update norm"].notna().all()


def test_the_cms_lesson_names_this_models_periods():
    assert lessons.cms_periods_sentence((16, 64, 1024)) == ("Level 0 updates every 16 tokens, level 1 every 64 tokens "
                                                            "and level 2 every 1,024 tokens.")
    assert lessons.cms_periods_sentence((1,)) == "Level 0 updates every token."


def test_association_recall_reads_the_models_predictions(model):
    text, table, accuracy = lessons.association_recall(model, seed=1, n_pairs=3)
    rec, _ = record(model, text)
    top1 = rec.stream("topk.ids")[:, 0]
    expected = [int(top1[p - 1]) == text.encode()[p] for p in table["position"]]
    assert list(table["right"]) == expected and accuracy == pytest.approx(np.mean(expected))
    assert "".join(table["answer"]) == "".join(c for c in text.split(";")[1] if c.isdigit())


def test_forgetting_keeps_the_memory_still_when_updates_are_off(model):
    table, recordings = lessons.forgetting(model, "abcabc")
    assert list(table["setting"]) == ["memory learns"] * 2 + ["updates off"] * 2
    initial = model.init_state(1).layers[0].memory.memory[0]
    off = recordings["updates off"].stream("layers.0.memory.initial.memory")
    learns = recordings["memory learns"].stream("layers.0.memory.initial.memory")
    torch.testing.assert_close(off, initial)  # the second reading starts from the untouched memory
    assert not torch.allclose(learns, initial)
    # Each row's numbers are its own reading's: surprise over layers and heads, loss over tokens with a next byte.
    for setting, ablation in (("memory learns", Ablation()), ("updates off", Ablation(test_time_updates=False))):
        first, state = record(model, "abcabc", ablation=ablation)
        second, _ = record(model, "abcabc", state=state, ablation=ablation)
        for reading, rec in (("first", first), ("second", second)):
            row = table[(table["setting"] == setting) & (table["reading"] == reading)].iloc[0]
            surprise = torch.stack([rec.stream(f"layers.{i}.memory.surprise").double().mean() for i in (0, 1)]).mean()
            assert row["mean surprise"] == pytest.approx(float(surprise))
            assert row["mean loss"] == pytest.approx(float(rec.stream("loss")[:-1].double().mean()))
    assert table["mean loss"].nunique() == 4  # the readings differ: a row taken from the wrong one would show


def test_model_lessons_confirm_or_deny_their_claims_with_the_numbers():
    falls = pd.DataFrame({"copy": [1, 2], "surprise, layer 0": [0.8, 0.5], "learning rate, layer 0": [0.3, 0.1],
                          "surprise, layer 1": [3.0, 4.0], "mean loss": [2.0, 2.5]})
    (s_ok, s_text), (still_ok, still_text), (l_ok, l_text) = lessons.repetition_verdict(falls)
    assert s_ok and s_text.startswith("Surprise in layer 0 fell") and "0.800 on copy 1, 0.500 on copy 2" in s_text
    assert "(its learning rate 0.100-0.300)" in s_text  # how much that layer's memory writes at all
    assert not still_ok and still_text.startswith("Surprise in layer 1 did not fall")
    assert not l_ok and "does not show it" in l_text
    assert lessons.repetition_outcome(falls) == "lower in layer 0, higher in layer 1"
    no_memory = pd.DataFrame({"copy": [1, 2], "mean loss": [2.0, 1.0]})
    assert lessons.repetition_verdict(no_memory)[0] == (False, "Surprise: this model has no test-time memory to show it.")
    assert lessons.repetition_outcome(no_memory) == "no test-time memory"
    # 16 digits at chance 10%: 5 or more right is unlikely by guessing (P = 0.017), 4 is not (P = 0.068).
    assert lessons.recall_verdict(5 / 16, 0.0, 16)[0][0] and not lessons.recall_verdict(4 / 16, 0.0, 16)[0][0]
    assert "5 or more" in lessons.recall_verdict(2 / 16, 2 / 16, 16)[0][1]
    assert not lessons.recall_verdict(0.5, 0.5, 16)[1][0]  # updates off did as well: said so
    table = pd.DataFrame({"setting": ["memory learns"] * 2 + ["updates off"] * 2, "reading": ["first", "second"] * 2,
                          "mean surprise": [1.0, 0.6, 1.0, 0.95], "mean loss": [0.0] * 4})
    (on_ok, _), (off_ok, off_text) = lessons.forgetting_verdict(table)
    assert on_ok and off_ok and "0.95x" in off_text


def test_lesson_verdicts_run_on_a_model(model):
    _, table = lessons.repetition(model, "abc ", 3)
    (layer0_fell, _), (layer1_fell, _), (loss_fell, _) = lessons.repetition_verdict(table)
    for fell, column in ((layer0_fell, "surprise, layer 0"), (layer1_fell, "surprise, layer 1")):
        assert fell == (table[column].iloc[-1] < table[column].iloc[0])
    assert loss_fell == (table["mean loss"].iloc[-1] < table["mean loss"].iloc[0])
    table, _ = lessons.forgetting(model, "a short passage")
    (cheaper, _), _ = lessons.forgetting_verdict(table)
    on = table[table["setting"] == "memory learns"].set_index("reading")["mean surprise"]
    assert cheaper == (on["second"] < on["first"])


def test_the_recall_lesson_reads_with_updates_on_and_off_and_names_its_outcome():
    model = tiny_model()
    lesson = lessons.recall_lesson(model, seed=1, n_pairs=3)
    _, table, accuracy = lessons.association_recall(model, seed=1, n_pairs=3)
    _, _, frozen = lessons.association_recall(model, seed=1, n_pairs=3, ablation=Ablation(test_time_updates=False))
    assert (lesson.accuracy, lesson.frozen) == (accuracy, frozen) and lesson.table.equals(table)
    assert lesson.checks == lessons.recall_verdict(accuracy, frozen, len(table))
    expected = "most" if accuracy > 0.5 else "some" if lesson.checks[0][0] else "about chance (10%)"
    assert lesson.outcome == expected and lesson.outcome in lessons.RECALL_OUTCOMES


@pytest.mark.parametrize("last, outcome", [(3.0, "lower"), (4.1, "about the same"), (5.0, "higher")])
def test_the_repetition_outcome_compares_the_last_copy_with_the_first(last, outcome):
    table = pd.DataFrame({"copy": [1, 2], "surprise, layer 0": [4.0, last], "mean loss": [2.0, 1.0]})
    assert lessons.repetition_outcome(table) == outcome


def test_the_store_and_cms_lessons_name_the_outcome_the_class_predicted():
    table = pd.DataFrame({"stored": ["a", "b"], "hebbian recalls": ["a", "x"], "delta recalls": ["a", "b"]})
    assert lessons.store_outcome(table) == "delta rule"
    assert lessons.store_outcome(table.assign(**{"delta recalls": ["a", "x"]})) == "both the same"
    rates = pd.DataFrame({"level": [0, 1], "period (tokens)": [1, 4], "updates": [96, 24], "mean update norm": [2.0, 0.5]})
    assert lessons.cms_outcome(rates) == "less often, changing less each time"
    assert lessons.cms_outcome(rates.assign(**{"mean update norm": [0.5, 2.0]})) == "less often, changing more each time"


def test_the_cms_lesson_checks_its_claims_on_the_numbers():
    rates = pd.DataFrame({"level": [0, 1, 2], "period (tokens)": [1, 2, 4], "updates": [96, 48, 24],
                          "mean update norm": [2.0, 1.0, 0.5]})
    (counts, said), (calmer, _) = lessons.cms_verdict(rates, 96)
    assert counts and calmer and "96, 48, 24 updates" in said
    checks = lessons.cms_verdict(rates.assign(updates=[96, 48, 23], **{"mean update norm": [1.0, 1.0, 9.0]}), 96)
    assert [holds for holds, _ in checks] == [False, False] and "not on this model" in checks[1][1]


def test_reread_variants_lesson_compares_a_written_first_reading_with_an_unwritten_one(model):
    passage, paraphrase = "One cat sat. It slept all day. Then it ran off.", "A cat was sitting. It dozed. It left."
    table = lessons.reread_variants(model, passage, paraphrase)
    assert list(table["second reading"]) == [lessons.VARIANT_LABELS[k] for k in lessons.REREAD_VARIANTS]
    assert table.loc[0, "text"] == passage and table.loc[3, "text"] == paraphrase
    # Row 0 by hand: the second reading after a first reading the memory wrote, and after one it did not.
    losses = []
    for first_reading in (Ablation(), Ablation(test_time_updates=False)):
        _, state = record(model, passage + " ", ablation=first_reading)
        second, _ = record(model, passage, state=state)
        losses.append(float(second.stream("loss")[:-1].double().mean()))
    assert table.loc[0, "loss, first reading written"] == pytest.approx(losses[0])
    assert table.loc[0, "ratio"] == pytest.approx(losses[0] / losses[1])
    assert [ok for ok, _ in lessons.reread_variants_verdict(table)] == list(table["ratio"] < 1)
    # Without a test-time memory the first reading leaves nothing to carry: every ratio is exactly 1.
    flat = lessons.reread_variants(tiny_model("transformer", cms_periods=()), passage, paraphrase)
    assert (flat["ratio"] == 1.0).all() and not any(ok for ok, _ in lessons.reread_variants_verdict(flat))
