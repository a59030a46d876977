"""Each experiment on tiny models: it measures what it says, and its pass rule fails where it must."""
import random

import pytest
import torch

from nested_learning import phrasings
from nested_learning.training import tasks
from nested_learning.validation import gating, memory_ablation, persistence, position, repetition, targets, updates
from nested_learning.validation.association import run as run_association
from nested_learning.validation.measure import local_reach, score
from tests.conftest import tiny_model
from tests.support.models import MEMORY_OFF

def test_every_component_writes_on_its_cadence(model):
    result = updates.run(model, n_sequences=2)
    assert result.passed, result.checks
    rows = {(r["layer"], r["component"]): r for r in result.tables["per_component"]}
    T = result.settings["tokens"]
    assert T == 16  # 2 x the slowest cadence of the tiny config (chunk 8, CMS period 8)
    assert rows[(1, "memory")]["calls_that_wrote"] == T  # one call per token over the first 16 tokens
    assert rows[(1, "projections")]["scheduled_positions"] == 2  # tokens 7 and 15
    assert rows[(0, "cms.0")]["calls_that_must_write"] == T - 1  # the stream's first token has nothing to learn
    assert rows[(0, "cms.3")]["calls_that_wrote"] == 2 and rows[(0, "cms.3")]["calls_that_wrote_off_schedule"] == 0
    writes = [(e["component"], e["first_token"]) for e in result.tables["writes_sequence_0"] if e["layer"] == 0]
    assert [t for c, t in writes if c == "cms.2"] == [3, 7, 11, 15]


def test_longer_streams_cut_calls_around_chunk_boundaries(model):
    plan = updates.call_plan(model, 40)
    assert [(r.start, r.stop) for r in plan[16:]] == [(16, 23), (23, 24), (24, 31), (31, 32), (32, 39), (39, 40)]
    assert updates.run(model, n_sequences=2, length=40).passed


def test_a_level_writing_off_its_cadence_fails(model):
    model.blocks[0].cms.levels[1].period = 1  # the config says 2: this level now writes every token
    result = updates.run(model, n_sequences=2)
    assert not result.passed and not result.checks["no_write_off_schedule"]


def test_a_parameter_written_during_inference_fails(model):
    weight = model.final_norm.weight

    def write_a_parameter(*_):  # returns None: the block's output is left alone
        weight.data.add_(1e-3)

    model.blocks[0].register_forward_hook(write_a_parameter)
    result = updates.run(model, n_sequences=2)
    assert not result.checks["parameters_bit_identical"] and not result.passed


def test_memory_switched_off_cannot_show_updates(model):
    result = updates.run(model, n_sequences=2, base=MEMORY_OFF)
    assert not result.checks["every_scheduled_write_happens"] and not result.passed


@pytest.mark.parametrize("preset, overrides, expected", [
    ("titans", dict(cms_periods=()), {"memory"}),  # momentum, static projections, no CMS
    ("hope-paper", dict(cms_periods=(1, 3)), {"memory", "projections", "cms.0", "cms.1"})])  # no attention, conv
def test_cadence_follows_other_configs(preset, overrides, expected):
    result = updates.run(tiny_model(preset, **overrides), n_sequences=2)
    assert result.passed, result.checks
    assert {r["component"] for r in result.tables["per_component"]} == expected


# --- the reach and the controls -----------------------------------------------------------------

def test_reach_counts_attention_window_and_conv_per_layer():
    assert local_reach(tiny_model().config) == 2 * (15 + 3 + 1)  # window 16, conv 4, shifted keys, 2 layers
    assert local_reach(tiny_model(shifted_keys=False).config) == 2 * (15 + 3)
    assert local_reach(tiny_model("transformer", cms_periods=(), n_persistent_tokens=0).config) == 2 * 15  # no conv
    assert local_reach(tiny_model(attention_window=None).config) is None  # full attention reaches everything
    assert local_reach(tiny_model("hope-paper").config) == 2 * 3  # no attention: the conv alone


def _two_keys(model, distance: int):
    """Two pass-key rows that differ only in the key, and the positions beyond the key's local reach."""
    text = "passkey: The pass key is 12345. Remember it. " + "x" * distance + " What is the pass key? The pass key is "
    tokens = torch.tensor([list(text.encode()), list(text.replace("12345", "67890").encode())])
    key_end = text.index("12345") + 5
    return tokens, slice(key_end + local_reach(model.config) + 1, tokens.shape[1])


def test_beyond_the_reach_only_the_memories_carry_the_key():
    model = tiny_model(attention_window=4)
    tokens, beyond = _two_keys(model, 40)
    no_memory = score(model, tokens, ablation=MEMORY_OFF).logits[:, beyond]
    assert (no_memory[0] - no_memory[1]).abs().max() < 1e-5  # nothing local reaches that far
    with_memory = score(model, tokens).logits[:, beyond]
    assert (with_memory[0] - with_memory[1]).abs().max() > 1e-4
    wide = tiny_model(attention_window=None)  # within reach, attention does see the key: the check would catch a leak
    inside = score(wide, tokens, ablation=MEMORY_OFF).logits[:, beyond]
    assert (inside[0] - inside[1]).abs().max() > 1e-4


def test_reading_in_calls_equals_one_call(model, prose):
    tokens = torch.tensor([list(w.encode()) for w in prose.windows(2, 90, 0)])
    one, calls = targets.read(model, tokens), targets.read(model, tokens, call_tokens=32)
    assert torch.allclose(one.loss[:, 1:], calls.loss[:, 1:], atol=1e-5) and torch.equal(one.correct[:, 1:], calls.correct[:, 1:])
    assert persistence.calls_match_one_call(model, 2, 100, prose.filler, 0) < persistence.TOLERANCE


def test_controls_change_nothing_without_memories(model, prose):
    passages, fillers = prose.passages(4, 24, 0), prose.fillers(4, 60, 0)
    out = targets.reread(model, passages, fillers, 60, 24, ablation=MEMORY_OFF)
    assert torch.equal(out["_own"], out["_swap"]) and torch.equal(out["_own"], out["_reset"])
    full = targets.reread(model, passages, fillers, 60, 24)
    assert not torch.equal(full["_own"], full["_swap"])  # with memories, another row's fast weights matter


PAIRS = (("One cat sat. It slept all day. Then it ran off.", "A cat was sitting. It dozed until dark. After that it left."),
         ("The boat sank fast. Nobody was hurt. The crew swam home.", "Quickly the ship went down. No one got injured. The sailors swam back."),
         ("Rain fell on the town. The streets were wet. Then sun came.", "It rained over the city. Roads turned damp. Later it was sunny."))


def test_reread_variants_change_the_passage_as_named():
    passage, paraphrase = PAIRS[0]
    rng = random.Random(0)
    assert targets.reread_variant("verbatim", passage, paraphrase, rng) == (passage, [True] * len(passage))
    assert targets.reread_variant("paraphrased", passage, paraphrase, rng)[0] == paraphrase
    shuffled, _ = targets.reread_variant("shuffled", passage, paraphrase, rng)
    sentences = ["One cat sat.", "It slept all day.", "Then it ran off."]
    assert shuffled != passage
    assert sorted(s if s.endswith(".") else s + "." for s in shuffled.split(". ")) == sorted(sentences)
    corrupted, clean = targets.reread_variant("corrupted", passage, paraphrase, rng)
    changed = [i for i, (a, b) in enumerate(zip(passage, corrupted)) if a != b]
    assert len(corrupted) == len(passage) and len(changed) == round(0.1 * len(passage))
    assert [i for i, flag in enumerate(clean) if not flag] == changed
    with pytest.raises(ValueError, match="unknown reread variant"):
        targets.reread_variant("reversed", passage, paraphrase, rng)


def test_reread_variants_measure_own_against_swap_and_nothing_without_memories(model, prose):
    fillers = prose.fillers(3, 80, 0)
    off = targets.reread_variants(model, PAIRS, fillers, 40, ablation=MEMORY_OFF)
    assert [row["variant"] for row in off] == list(targets.REREAD_VARIANTS)
    assert all(torch.equal(row["_own"], row["_swap"]) and torch.equal(row["_own"], row["_reset"]) for row in off)
    full = targets.reread_variants(model, PAIRS, fillers, 40)
    assert all(not torch.equal(row["_own"], row["_swap"]) for row in full)
    assert "clean_own" in full[2] and "clean_own" not in full[0]
    with pytest.raises(ValueError, match="fillers"):
        targets.reread_variants(model, PAIRS, [f[:10] for f in fillers], 40)


def test_shipped_paraphrases_are_three_sentence_ascii_pairs_that_differ():
    from nested_learning.validation.paraphrases import PARAPHRASES
    assert len(PARAPHRASES) >= 48
    for passage, paraphrase in PARAPHRASES:
        assert passage.isascii() and paraphrase.isascii() and passage != paraphrase
        assert passage.count(". ") == 2 and passage.endswith(".")


# --- 2. repetition learning ----------------------------------------------------------------------

def test_repetition_rule_on_known_losses():
    first = torch.full((20,), 2.0) + torch.linspace(0, 0.1, 20)
    metrics, checks = repetition.judge(first, first * 0.3, first * 0.98)
    assert all(checks.values()) and metrics["ratio_own"].ci_high <= 0.5
    _, checks = repetition.judge(first, first * 0.6, first * 0.98)  # not half
    assert not checks["ratio_at_most_half"]
    _, checks = repetition.judge(first, first * 0.3, first * 0.3)  # the swap does as well: not the memory
    assert not checks["swap_ratio_at_least_0.9"] and not checks["own_memory_beats_swap"]


def test_repetition_tables_each_gap_and_condition(model, prose):
    baseline = tiny_model("transformer", cms_periods=(), n_persistent_tokens=0)
    result = repetition.run(model, prose, n_sequences=4, length=24, gaps=(20, 40), baseline=baseline)
    assert result.settings["judged_gaps"] == [40] and result.settings["reach"] == 38
    assert {(r["gap"], r["condition"]) for r in result.tables["ratio_by_gap"]} == {
        (g, c) for g in (20, 40) for c in ("own", "swap", "reset", "updates off (condition)", "baseline")}
    assert {"ratio_own", "ratio_swap", "ratio_reset", "ratio_baseline", "ratio_updates_off_condition"} <= set(result.metrics)


def test_repetition_without_memory_or_reach_cannot_pass(model, prose):
    off = repetition.run(model, prose, n_sequences=4, length=24, gaps=(40,), base=MEMORY_OFF)
    assert off.metrics["second_reading_own_minus_swap"].mean == 0.0 and not off.passed
    full_attention = repetition.run(tiny_model(attention_window=None), prose, n_sequences=4, length=24, gaps=(40,))
    assert not full_attention.passed and "nothing to judge" in full_attention.notes[0]


# --- 3. in-context association -------------------------------------------------------------------

def test_association_conditions_and_memory_off_control(model, prose):
    baseline = tiny_model("transformer", cms_periods=(), n_persistent_tokens=0)
    result = run_association(model, prose, n_sequences=4, n_pairs=3, spread=40, baseline=baseline)
    assert {(r["spread"], r["condition"]) for r in result.tables["accuracy_by_condition"]} == {
        (s, c) for s in (40, 0) for c in ("own", "swap", "reset", "updates off (condition)", "baseline")}
    assert result.checks["pairs_beyond_the_reach"] and "full_model_beats_baseline" in result.checks
    off = run_association(model, prose, n_sequences=4, n_pairs=3, spread=40, base=MEMORY_OFF)
    assert off.metrics["accuracy_own_minus_swap"].mean == 0.0 and not off.passed
    near = run_association(model, prose, n_sequences=4, n_pairs=3, spread=10)
    assert not near.checks["pairs_beyond_the_reach"] and not near.passed


# --- 4. memory ablation --------------------------------------------------------------------------

def test_ablation_lists_the_components_each_config_has(model):
    assert list(memory_ablation.components(model)) == [
        "attention", "memory", "cms", "cms.0", "cms.1", "cms.2", "cms.3", "persistent_tokens", "ffn",
        "test_time_updates", "retention", "self_modification", "adaptive_lr"]
    assert list(memory_ablation.components(tiny_model("transformer", cms_periods=(), n_persistent_tokens=0))) == ["attention", "ffn"]
    assert list(memory_ablation.components(model, MEMORY_OFF)) == ["attention", "persistent_tokens", "ffn"]


def test_ablation_table_rows_on_prose_and_tasks(model, prose):
    result = memory_ablation.run(model, prose, n_sequences=3, gap=40, spread=40, distance=50)
    rows = {(r["table"], r["measurement"], r["row"]) for r in result.tables["ablation"]}
    for row in ("without memory", "without cms.2", "without self_modification", "without adaptive_lr",
                "without attention", "swap (control)", "reset (control)", "updates off (condition)"):
        assert ("prose", "prose reread", row) in rows and ("tasks", "passkey", row) in rows
    assert all(r["effect"] in ("hurts", "helps", "no clear effect") for r in result.tables["ablation"])
    off = memory_ablation.run(model, prose, n_sequences=3, gap=40, spread=40, distance=50, base=MEMORY_OFF)
    assert not off.passed and "no memory" in off.notes[0]


# --- 5. long-range persistence -------------------------------------------------------------------

def test_persistence_curves_and_memory_off_control(model, prose):
    baseline = tiny_model("transformer", cms_periods=(), n_persistent_tokens=0)
    result = persistence.run(model, prose, n_sequences=3, n_long=2, distances=(20, 60), long_from=60, baseline=baseline)
    assert result.settings["judged_distances"] == [20, 60]  # 20 bytes of prose + the fact's tail and the question
    assert result.checks["carried_calls_match_one_call"]
    assert {(r["distance"], r["condition"]) for r in result.tables["by_distance"]} == {
        (d, c) for d in (20, 60) for c in ("own", "swap", "reset", "updates off (condition)", "baseline")}
    off = persistence.run(model, prose, n_sequences=3, n_long=2, distances=(60,), base=MEMORY_OFF)
    assert off.metrics["copy_loss_own_minus_swap"].mean == 0.0 and not off.passed


# --- 6. surprise gating and 7. loss by position ----------------------------------------------------

def test_gating_reports_each_memory_layer_and_gap_against_new_text_at_the_same_position(model, prose):
    result = gating.run(model, prose, n_sequences=4, gaps=(30, 40), length=24)
    assert [(r["layer"], r["gap"]) for r in result.tables["rate_by_layer"]] == [(0, 30), (1, 30), (0, 40), (1, 40)]
    assert set(result.checks) == {f"layer_{i}_gap_{g}_reread_gets_a_lower_rate_than_new_text" for i in (0, 1) for g in (30, 40)}
    assert all(0 <= r["pinned_share"] <= 1 for r in result.tables["rate_by_layer"])
    none = gating.run(tiny_model("transformer", cms_periods=(), n_persistent_tokens=0), prose, n_sequences=4, gaps=(30,), length=24)
    assert not none.passed and "no memory" in none.notes[0]


def test_the_same_position_control_differs_from_the_reread_only_by_the_first_passage(model, prose):
    """The new-text rows read the same filler and the same passage at the same position: when every row's
    first passage is the same one, reread and new text are one input and the difference is exactly 0; with
    different first passages the memory carries the difference."""
    passages, fillers = prose.passages(4, 24, "t"), prose.fillers(4, 30, "t")
    same = targets.gating(model, [passages[0]] * 4, fillers, 30, 24)
    assert all(torch.equal(layer["_reread_minus_new"], torch.zeros(4)) for layer in same)
    different = targets.gating(model, passages, fillers, 30, 24)
    assert all(layer["_reread_minus_new"].abs().max() > 0 for layer in different)


def test_surprise_slope_recovers_the_rate_per_standard_deviation_of_surprise_with_position_held():
    g = torch.Generator().manual_seed(0)
    surprise = torch.rand(3, 200, generator=g) + torch.linspace(2, 0, 200)  # surprise falls with position too
    z = (surprise - surprise.mean(1, keepdim=True)) / surprise.std(1, keepdim=True)
    rate = 0.2 + 0.05 * z + 0.1 * torch.log1p(torch.arange(200.0))
    assert torch.allclose(targets.surprise_slope(rate, surprise), torch.full((3,), 0.05), atol=1e-5)


def test_loss_by_position_is_reported_not_judged(model, prose):
    baseline = tiny_model("transformer", cms_periods=(), n_persistent_tokens=0)
    result = position.run(model, prose, n_windows=2, length=100, baseline=baseline)
    assert not result.judged and result.verdict == "REPORTED"
    assert [r["positions"] for r in result.tables["loss_by_position"]] == ["1-16", "17-64", "65-99"]
    assert "model_minus_baseline" in result.tables["loss_by_position"][0]


def test_recall_reads_every_pair_before_the_controls_even_when_the_filler_holds_a_semicolon(model):
    """The state under each control is taken after the last pair: a ";" inside the filler once cut the
    pairs short, so the controls read most pairs themselves and recalled them (measured: 65% "recall"
    with another document's memory at 70 tokens apart)."""
    filler = lambda rng, n: ("a; b " * n)[:n]  # every pair's filler holds semicolons
    samples = [tasks.associative_recall(random.Random(i), n_pairs=4, spread=12, filler=filler) for i in range(3)]
    cut = targets.queries_start(samples)
    assert samples[0].text.index(";") < cut  # the trap is there
    assert samples[0].text[cut:].startswith("; ") and samples[0].text[:cut].count("=") == 4  # every pair before it
    assert all(s.text[cut + 1:].count(";") == 0 for s in samples)  # no pair after it
    with pytest.raises(ValueError, match="not aligned"):
        targets.queries_start([samples[0], tasks.associative_recall(random.Random(0), n_pairs=5, spread=12, filler=filler)])
    out = targets.recall(model, 2, 4, 12, filler, controls=("own",))
    drawn = [tasks.associative_recall(random.Random(f"targets/recall/0/12/{i}"), n_pairs=4, spread=12, filler=filler)
             for i in range(2)]  # the rows recall() reads
    assert out["prefix_tokens"] == targets.queries_start(drawn) > drawn[0].text.index(";")


# --- wordings (issue 27) ----------------------------------------------------------------------------

def test_wording_groups_give_every_wording_two_rows_and_cover_every_row():
    heldout = phrasings.wordings("passkey", "heldout")
    groups = targets.wording_groups(heldout, 48)
    assert [rows for _, _, rows in groups] == [2] * 24 and {w for w, _, _ in groups} == set(heldout)
    groups = targets.wording_groups(phrasings.wordings("passkey", "trained"), 49, seed=3)
    assert len(groups) == 24 and sum(r for _, _, r in groups) == 49 and min(r for _, _, r in groups) == 2
    assert [start for _, start, _ in groups] == [sum(r for _, _, r in groups[:i]) for i in range(24)]
    with pytest.raises(ValueError):
        targets.wording_groups(heldout, 1)


def test_by_wording_in_the_original_wording_is_the_plain_measurement(model):
    filler = tasks.Filler("the quick brown fox jumps over the lazy dog " * 4)
    plain = targets.passkey(model, 4, 40, filler)
    pooled = targets.by_wording(targets.passkey, model, phrasings.wordings("passkey", "original"), 4, distance=40, filler=filler)
    assert torch.equal(plain["_own"], pooled["_own"]) and torch.equal(plain["_loss_swap"], pooled["_loss_swap"])
    assert pooled["wordings"] == 1 and pooled["token_distance"] == plain["token_distance"]


@pytest.mark.parametrize("task, settings", [("recall", dict(n_pairs=3, spread=10)), ("passkey", dict(distance=30)),
                                            ("repeat", dict(gap=30, length=8))])
def test_every_heldout_wording_is_measured_with_its_answers_masked(model, task, settings):
    filler = tasks.Filler("the quick brown fox jumps over the lazy dog " * 4)
    heldout = phrasings.wordings(task, "heldout")
    measure = {"recall": targets.recall, "passkey": targets.passkey, "repeat": targets.copy}[task]
    out = targets.by_wording(measure, model, heldout, 2 * len(heldout), filler=filler, **settings)
    assert out["wordings"] == len(heldout) and out["_own"].shape == (2 * len(heldout),)
    assert not torch.isnan(out["_own"]).any()


def test_prose_windows_as_written_keep_the_line_breaks_the_one_line_windows_drop(tmp_path):
    from nested_learning.validation.prose import HeldoutProse
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(12):
        (folder / f"d{i}.txt").write_text(f"Title {i}\n\n    indented line\tof doc {i} \u00e9\n" * 60)
    prose = HeldoutProse([str(folder)], heldout_fraction=0.5, min_bytes=1000)
    one_line = prose.windows(3, 500, "s")
    written = prose.windows(3, 500, "s", as_written=True)
    assert all("\n" not in w and "  " not in w for w in one_line)
    assert all(len(w) == 500 and w.isascii() and "\n\nindented line of doc" in w for w in written)  # as training reads them
    assert [w.split()[:2] for w in written] == [w.split()[:2] for w in one_line]  # the same documents, same order
