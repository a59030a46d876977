"""Each experiment on tiny models: it measures what it says, and its pass rule fails where it must."""
import pytest
import torch

from nested_learning import Ablation
from nested_learning.validation import data, memory_ablation, persistence, repetition, updates
from nested_learning.validation.association import run as run_association
from nested_learning.validation.measure import score, windowed
from tests.conftest import tiny_model

MEMORY_OFF = Ablation(memory=False, cms=False)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine two threads run 10x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --- 1. memory updates ----------------------------------------------------------------------------

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


# --- 2. repetition learning ----------------------------------------------------------------------

def test_repetition_reports_loss_and_surprise_per_reading(model):
    result = repetition.run(model, n_sequences=6, length=10, repeats=3)
    rows = result.tables["per_reading"]
    assert [(r["condition"], r["reading"]) for r in rows] == [(c, i) for c in ("updates_on", "updates_off") for i in (1, 2, 3)]
    assert all(r["loss_ci_low"] <= r["loss"] <= r["loss_ci_high"] and r["surprise"] > 0 for r in rows)
    assert result.settings["example"].startswith("repeat: ") and result.settings["example"].count(" | ") == 2


def test_repetition_without_memory_cannot_pass(model):
    result = repetition.run(model, n_sequences=6, length=10, repeats=3, base=MEMORY_OFF)
    difference = result.metrics["later_readings_on_minus_off"]
    assert (difference.mean, difference.ci_low, difference.ci_high) == (0.0, 0.0, 0.0)  # on and off are the same model
    assert not result.passed
    with pytest.raises(ValueError, match="at least 2 readings"):
        repetition.run(model, repeats=1)


# --- 3. in-context association -------------------------------------------------------------------

def test_association_conditions_and_memory_off_control(model):
    result = run_association(model, n_sequences=6, pair_counts=(2, 3))
    assert {(r["condition"], r["pairs"]) for r in result.tables["accuracy_by_pairs"]} == {
        (c, p) for c in ("full", "updates_off", "attention_only") for p in (2, 3)}
    assert result.n_sequences == 12
    off = run_association(model, n_sequences=6, pair_counts=(2,), base=MEMORY_OFF)
    assert off.metrics["accuracy_full_minus_updates_off"].mean == 0.0 and not off.passed


@pytest.mark.parametrize("length", [1, 12])  # a one-letter string is often inside the word "repeat"
def test_repetition_masks_mark_each_reading_of_the_string(length):
    for seed in range(12):
        batch, masks = data.repetitions(3, length, 3, seed=seed)
        assert int(masks[0].nonzero()[0]) == len("repeat: ")
        for row, text in enumerate(batch.texts):
            s = text[len("repeat: "):len("repeat: ") + length]
            assert [bytes(batch.tokens[row][mask].tolist()).decode() for mask in masks] == [s, s, s]


def test_recall_batch_marks_the_queried_values():
    batch, answers, split = data.recall(3, 4, seed=0)
    text = batch.texts[0]
    pairs = dict(item.split("=") for item in text[len("recall: "):text.index(" ;")].split())
    for position in answers.nonzero().flatten().tolist()[::2]:  # first digit of each answer
        key = text[position - 3:position - 1]
        assert text[position:position + 2] == pairs[key] and position > split


# --- 4. memory ablation --------------------------------------------------------------------------

def test_ablation_lists_the_components_each_config_has(model):
    assert list(memory_ablation.components(model)) == [
        "attention", "memory", "cms", "cms.0", "cms.1", "cms.2", "cms.3", "persistent_tokens", "ffn",
        "test_time_updates", "retention", "self_modification", "adaptive_lr"]
    assert list(memory_ablation.components(tiny_model("transformer", cms_periods=(), n_persistent_tokens=0))) == ["attention", "ffn"]
    assert list(memory_ablation.components(model, MEMORY_OFF)) == ["attention", "persistent_tokens", "ffn"]


def test_swapped_state_takes_memory_from_another_row_and_keeps_the_rest(model):
    state = score(model, torch.randint(0, 256, (3, 12), generator=torch.Generator().manual_seed(0))).state
    rows = torch.tensor([2, 0, 1])
    swapped = memory_ablation.replace_memory(state, state, rows)
    for own, new in zip(state.layers, swapped.layers):
        assert torch.equal(new.memory.memory, own.memory.memory[rows])
        assert torch.equal(new.memory.projections.w_in, own.memory.projections.w_in[rows])
        assert torch.equal(new.cms[2].memory, own.cms[2].memory[rows])
        assert new.attention is own.attention  # the recent tokens stay the row's own
        assert torch.equal(new.cms[2].previous_input, own.cms[2].previous_input)
    assert swapped.position == state.position


def test_swap_control_moves_the_answers_only_when_there_is_a_memory(model):
    result = memory_ablation.run(model, n_sequences=6, length=48, swap_pairs=3)
    assert result.metrics["answer_loss_swapped_minus_own"].mean != 0.0
    assert {r["memory_state"] for r in result.tables["swapped_state"]} == {"own", "swapped", "initial"}
    off = memory_ablation.run(model, n_sequences=6, length=48, swap_pairs=3, base=MEMORY_OFF)
    swap = off.metrics["answer_loss_swapped_minus_own"]
    assert (swap.mean, swap.ci_low, swap.ci_high) == (0.0, 0.0, 0.0) and not off.passed
    assert not off.checks["updates_off_raises_loss"]  # nothing left to switch off


# --- 5. long-range persistence -------------------------------------------------------------------

def _two_keys(distractors: int):
    """Two rows of one passkey sequence that differ only in the stated key (not in the answer)."""
    task = data.passkey(1, distractors, seed=0)
    tokens = task.batch.tokens.repeat(2, 1)
    tokens[1, list(task.key_positions)] = torch.tensor(list(b"00000")) + (tokens[0, list(task.key_positions)] == 48).long()
    first_answer = int(task.answer_mask.nonzero()[0])
    return task, tokens, first_answer


def test_beyond_attention_reach_only_the_memory_carries_the_key():
    model = windowed(tiny_model(), 4)
    reach = persistence.attention_reach(model)
    assert reach == 2 * 3  # 2 layers, each reaching 3 tokens back
    task, tokens, first_answer = _two_keys(16)
    assert task.gap() > reach
    question = slice(task.key_positions[-1] + reach + 1, first_answer)  # positions the key cannot reach by attention
    no_memory = score(model, tokens, ablation=MEMORY_OFF).logits[:, question]
    assert (no_memory[0] - no_memory[1]).abs().max() < 1e-5
    with_memory = score(model, tokens).logits[:, question]
    assert (with_memory[0] - with_memory[1]).abs().max() > 1e-4
    # Within reach, attention alone does see the key: the check above would catch a leak.
    wide = windowed(tiny_model(), 64)
    inside = score(wide, tokens, ablation=MEMORY_OFF).logits[:, question]
    assert (inside[0] - inside[1]).abs().max() > 1e-4


def test_carried_calls_reproduce_one_call_and_reset_erases_the_key():
    model = windowed(tiny_model(), 4)
    task, tokens, first_answer = _two_keys(16)
    task.batch.tokens = tokens
    one_call = score(model, tokens)
    carried, reset, difference = persistence.across_calls(model, task, one_call)
    assert difference < persistence.TOLERANCE
    before_answer = slice(0, first_answer - task.question_start)  # question tokens, identical in both rows
    assert (carried.logits[0, before_answer] - carried.logits[1, before_answer]).abs().max() > 1e-4
    assert torch.allclose(reset.logits[0, before_answer], reset.logits[1, before_answer], atol=1e-6)
    fresh = score(model, tokens[:1, task.question_start:])  # Reset = a new stream on the question alone
    assert torch.allclose(reset.logits[:1], fresh.logits, atol=1e-6)


def test_persistence_result_and_its_memory_off_control(model):
    result = persistence.run(model, n_sequences=6, window=4, distractor_tokens=(0, 24))
    assert result.settings["attention_reach"] == 6 and result.settings["beyond_reach"] == [0, 24]
    assert result.checks["carried_calls_match_one_call"]
    assert {r["distractor_tokens"] for r in result.tables["accuracy_by_distance"]} == {0, 24}
    off = persistence.run(model, n_sequences=6, window=4, distractor_tokens=(24,), base=MEMORY_OFF)
    assert off.metrics["accuracy_beyond_reach_full_minus_updates_off"].mean == 0.0 and not off.passed


def test_no_distance_beyond_reach_is_reported_not_passed():
    model = tiny_model(attention_window=None)  # trained with full attention: the test imposes 64
    result = persistence.run(model, n_sequences=4, window=64, distractor_tokens=(0,))
    assert result.settings["beyond_reach"] == [] and not result.passed
    assert any("beyond attention's reach" in note for note in result.notes)
