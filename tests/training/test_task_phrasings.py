"""The tasks' many wordings (issue 27): counts, a held-out set disjoint from training and pinned, and a
training sampler that never emits a held-out wording."""
import dataclasses
import itertools

import pytest

from nested_learning import phrasings
from nested_learning.training import tasks
from nested_learning.training.data import TrainBatches
from nested_learning.training.recipe import load_recipe, stage_configs
from nested_learning.training.trainer import TrainConfig

TASKS = ("passkey", "repeat", "recall")
# The held-out wordings as committed before the training run they judge: changing them needs a new run.
HELDOUT_DIGEST = "b80adc75af3f091d"


def render(task: str, wording, seed) -> str:
    """A sample of ``task`` in ``wording`` with its parts spread by filler (distractor sentences)."""
    spread = {"passkey": dict(filler_bytes=120), "repeat": dict(gap=60), "recall": dict(n_pairs=5, spread=20)}[task]
    return tasks.make_sample(task, seed, wording=wording, **spread).text


def matches(text: str, split: str, task: str) -> list:
    return [w for w in phrasings.wordings(task, split) if w.pattern().fullmatch(text)]


@pytest.mark.parametrize("task", TASKS)
def test_every_task_has_at_least_50_trained_and_20_heldout_distinct_wordings(task):
    trained, heldout = phrasings.wordings(task, "trained"), phrasings.wordings(task, "heldout")
    assert len(set(trained)) == len(trained) >= 50 and len(set(heldout)) == len(heldout) >= 20
    assert not set(trained) & set(heldout)


@pytest.mark.parametrize("task", TASKS)
def test_heldout_wordings_share_no_component_with_trained_ones(task):
    fields = [f.name for f in dataclasses.fields(phrasings.wordings(task, "trained")[0])]
    for name in fields:
        seen = {getattr(w, name) for w in phrasings.wordings(task, "trained")}
        assert not seen & {getattr(w, name) for w in phrasings.wordings(task, "heldout")}, name


@pytest.mark.parametrize("task", TASKS)
def test_a_sample_is_recognised_as_its_own_wording_and_in_no_other_split(task):
    for split, other in (("trained", "heldout"), ("heldout", "trained")):
        for i, wording in enumerate(phrasings.wordings(task, split)):
            text = render(task, wording, i)
            assert wording in matches(text, split, task), text
            assert not matches(text, other, task), text


def test_the_original_wording_is_a_trained_one_and_renders_the_historical_text():
    for task in TASKS:
        assert phrasings.ORIGINAL[task] in phrasings.wordings(task, "trained")
    # The texts the code before the many wordings generated for these seeds (checked against it).
    assert tasks.repeated_string(seed=1, length=6).text == "repeat: eszyci | eszyci\n"
    assert tasks.associative_recall(seed=3, n_pairs=2).text == "recall: hs=59 re=79 ; hs=59 re=79\n"
    assert tasks.passkey(seed=5, n_distractors=1).text == ("passkey: The grass is green. The pass key is 94580. Remember it. "
                                                          "What is the pass key? The pass key is 94580.\n")


def test_the_heldout_set_is_pinned():
    assert phrasings.digest("heldout") == HELDOUT_DIGEST


@pytest.mark.parametrize("task", TASKS)
def test_every_wording_puts_the_answers_where_the_sample_says(task):
    """The answer bytes are the key's digits / the copy / the values, in every wording."""
    for wording in itertools.chain(phrasings.wordings(task, "trained"), phrasings.wordings(task, "heldout")):
        sample = tasks.make_sample(task, 11, wording=wording)
        if task == "repeat":
            assert sample.answers == sample.text[len(wording.head):len(wording.head) + len(sample.answers)]
        else:
            assert sample.answers.isdigit()
        if task == "passkey":
            assert sample.text[:sample.answer_positions[0]].endswith(wording.question)
            assert wording.render_fact(sample.answers) in sample.text


def test_the_phrasings_recipe_trains_in_the_trained_wordings_and_never_a_heldout_one():
    recipe = load_recipe("cpu-phrasings")
    configs = stage_configs(recipe, TrainConfig(out="/tmp/x.safetensors", data=[]))
    assert {c.task_phrasings for c in configs} == {"trained"}
    assert {c.task_phrasings for c in stage_configs(load_recipe("cpu"), TrainConfig(out="/tmp/x.safetensors"))} == {"original"}
    config = configs[3]  # the mixed stage: every task, spread over 2,048-byte windows
    batches = TrainBatches([], config.seq_len, 0.03, config.tasks, 1.0, 0, task_options=config.task_options,
                           phrasings=config.task_phrasings)
    seen = {task: set() for task in TASKS}
    for _ in range(12):
        tokens, _ = batches.next_sequence()
        samples = bytes(tokens).decode("ascii").split("\n")[:-1]  # the tail after the last sample is padding
        for text in samples:
            task = next(t for t in TASKS if matches(text + "\n", "trained", t) or matches(text + "\n", "heldout", t))
            assert not matches(text + "\n", "heldout", task), text
            seen[task].update(matches(text + "\n", "trained", task))
    assert all(len(s) >= 5 for s in seen.values()), {t: len(s) for t, s in seen.items()}


def test_original_phrasings_keep_a_run_in_the_one_original_wording():
    tokens, _ = tasks.pack_tasks(4, 3000)
    for text in bytes(tokens).decode("ascii").split("\n")[:-1]:
        assert any(phrasings.ORIGINAL[t].pattern().fullmatch(text + "\n") for t in TASKS), text
    with pytest.raises(ValueError, match="phrasings"):
        tasks.pack_tasks(4, 300, phrasings="heldout")
    with pytest.raises(ValueError, match="task-phrasings"):
        TrainConfig(out="x.safetensors", task_phrasings="heldout", task_fraction=1.0).validate()


def test_binders_vary_only_recalls_binding_and_never_use_a_heldout_one():
    """``binders``: recall's binding drawn from many (words and marks of 1-10 bytes), the rest original."""
    binders = phrasings.wordings("recall", "binders")
    assert len(binders) == 240 and len({w.pair for w in binders}) == 240
    assert {phrasings.wordings(t, "binders") for t in ("passkey", "repeat")} == {(phrasings.ORIGINAL["passkey"],),
                                                                                 (phrasings.ORIGINAL["repeat"],)}
    heldout = {w.pair for w in phrasings.wordings("recall", "heldout")}
    lengths = set()
    for wording in binders:
        between = wording.pair[len("{k}"):-len("{v}")]
        assert wording.pair not in heldout and not any(c.isdigit() or c == ";" for c in between)
        assert (wording.head, wording.separator, wording.ask) == (phrasings.ORIGINAL["recall"].head, " ", " ; ")
        sample = tasks.make_sample("recall", 5, wording=wording)
        assert sample.answers.isdigit() and wording.query == "{k}" + between
        lengths.add(len(between))
    assert min(lengths) == 1 and max(lengths) == 10  # keys one byte from their values up to ten


def test_a_pass_key_questions_shared_ending_and_its_echo():
    """What the frames probe groups by: the original question ends with the 17 bytes before its key
    ("The pass key is "), no held-out question ends as its fact did, and an echoed one does while its
    sample still puts the answer right after the question."""
    assert phrasings.ORIGINAL["passkey"].shared_ending() == len(" The pass key is ")
    heldout = phrasings.wordings("passkey", "heldout")
    assert max(w.shared_ending() for w in heldout) <= 2
    for wording in heldout:
        echo = wording.echoed()
        before = wording.fact.split(phrasings.KEY)[0]
        assert echo.question.endswith(before) and echo.shared_ending() >= len(before)
        sample = tasks.make_sample("passkey", 5, wording=echo, filler_bytes=120)
        key = sample.text[sample.answer_positions[0]:sample.answer_positions[-1] + 1]
        assert sample.text.endswith(echo.question + key + ".\n") and wording.render_fact(key) in sample.text
