"""Synthetic memory tasks: exact labels, reproducible, packable into fixed-length training sequences."""
import re

import pytest

from nested_learning.training import tasks
from nested_learning.training.evaluate import _answer_runs


def test_recall_answers_are_the_values_of_the_queried_keys():
    sample = tasks.associative_recall(seed=3, n_pairs=6, key_length=2, value_length=3)
    pairs_part, queries_part = sample.text.split(" ;")
    pairs = dict(re.findall(r" ([a-z]+)=([0-9]+)", pairs_part))
    queries = re.findall(r" ([a-z]+)=([0-9]+)", queries_part)
    assert len(pairs) == 6 and sorted(k for k, _ in queries) == sorted(pairs)  # every key asked once
    assert sample.answers == "".join(pairs[k] for k, _ in queries)
    assert len(sample.answer_positions) == 6 * 3
    # Every answer byte lies after the ';' and is a digit of a queried value.
    boundary = sample.text.index(";")
    assert all(p > boundary and sample.text[p].isdigit() for p in sample.answer_positions)


def test_repeat_answers_copy_the_first_occurrence():
    sample = tasks.repeated_string(seed=1, length=20)
    first = sample.text[len("repeat: "):len("repeat: ") + 20]
    assert sample.answers == first
    assert sample.text == f"repeat: {first} | {first}\n"


def test_passkey_answer_is_the_key_stated_before_the_distractors():
    sample = tasks.passkey(seed=5, n_distractors=10, digits=5)
    stated = re.search(r"The pass key is (\d{5})\. Remember it\.", sample.text).group(1)
    assert sample.answers == stated
    assert sample.text.endswith(f"The pass key is {stated}.\n")
    assert sample.text.count("The grass is green.") == 2  # 10 distractors cycle through 5 sentences


@pytest.mark.parametrize("task", list(tasks.TASKS))
def test_samples_are_seeded_ascii_and_fixed_length(task):
    a, b, c = (tasks.make_sample(task, seed) for seed in (7, 7, 8))
    assert a == b and a.text != c.text
    assert len(a) == len(c)  # fixed settings give a fixed length, so evaluation batches without padding
    assert a.text.isascii() and a.tokens == list(a.text.encode())
    weights = a.weights()
    assert [i for i, w in enumerate(weights) if w] == list(a.answer_positions)


def test_pack_tasks_fills_exactly_with_whole_samples():
    tokens, weights = tasks.pack_tasks("s", 300)
    again = tasks.pack_tasks("s", 300)
    assert (tokens, weights) == again and len(tokens) == len(weights) == 300
    text = bytes(tokens).decode("ascii")
    assert text.startswith(("recall:", "repeat:", "passkey:")) and sum(weights) > 0
    # Every weighted run is an answer where the format asks for one, and equals what the sample stated:
    # a queried value (after the ";", the value its key was given), a copy (the string before it), the
    # pass key after the question (the key of the fact).
    runs = [(run[0], run[-1] + 1) for run in _answer_runs([i for i, w in enumerate(weights) if w])]
    assert runs
    for a, b in runs:
        answer, before = text[a:b], text[:a]
        sample = before[max(before.rfind(head) for head in ("recall:", "repeat:", "passkey:")):]
        if sample.startswith("recall:"):
            facts, queries = sample.split(";")
            key = queries.rsplit(" ", 1)[-1]
            assert key.endswith("=") and f" {key}{answer} " in facts, (sample, answer)
        elif sample.startswith("repeat:"):
            assert sample.endswith("| ") and sample.rstrip(" |").endswith(answer), (sample, answer)
        else:
            assert sample.endswith(tasks.PASSKEY_QUESTION), (sample, answer)
            assert f"{tasks.PASSKEY_FACT_HEAD}{answer}{tasks.PASSKEY_FACT_TAIL}" in sample
    small_tokens, small_weights = tasks.pack_tasks(1, 40, ["repeat", "passkey"])  # passkey never fits in 40
    assert bytes(small_tokens).decode().startswith("repeat:") and sum(small_weights) >= 8


def test_bad_task_settings_raise_one_line_errors():
    with pytest.raises(ValueError, match="unknown task 'copy'"):
        tasks.parse_task_names("recall,copy")
    with pytest.raises(ValueError, match="n_pairs must be an integer >= 1"):
        tasks.associative_recall(n_pairs=0)
    with pytest.raises(ValueError, match="distinct keys"):
        tasks.associative_recall(n_pairs=30, key_length=1)
    with pytest.raises(ValueError, match="alphabet"):
        tasks.repeated_string(alphabet="ab|")


def test_repeat_with_several_copies_labels_every_copy():
    sample = tasks.repeated_string(seed=2, length=4, repeats=3)
    s = sample.text[len("repeat: "):len("repeat: ") + 4]
    assert sample.text == f"repeat: {s} | {s} | {s}\n" and sample.answers == s + s
    assert tasks.repeated_string(seed=2, length=4) == tasks.repeated_string(seed=2, length=4, repeats=2)
