"""The narrated tour: its stops are the run's first repeat (first reading, first byte again, a few bytes
in), its last repeat and the memory's most surprising token; each caption quotes the recording's numbers."""
import numpy as np

from nested_learning.recording import record
from nested_learning.viz.repeats import find_repeats
from nested_learning.viz.timelines import mean_surprise
from nested_learning.viz.tour import tour_stops
from tests.conftest import tiny_model

TEXT = "The cat sat on the mat today. A dog ran by. The cat sat on the mat today. The cat sat on the mat today."


def test_the_tour_stops_where_the_repeat_story_happens():
    recording, _ = record(tiny_model(), TEXT)
    found = find_repeats(recording.tokens.tolist())
    stops = tour_stops(recording, found)
    tokens = [t for t, _ in stops]
    first = found[0]
    assert tokens[:3] == [first.source, first.start, first.start + min(first.length - 1, 8)]
    assert tokens[-1] == int(np.nanargmax(mean_surprise(recording)))
    loss = recording.stream("loss").double().numpy()
    assert f"{loss[first.start]:.2f} nats" in stops[1][1]  # the caption states the measured loss
    quoted = TEXT.encode()[first.source:first.source + min(first.length, 40)].decode()
    assert f"\u201c{quoted}\u201d" in stops[0][1]  # the repeated words, quoted
    assert len(stops) == (5 if len(found) > 1 else 4) and all(0 <= t < recording.n_tokens for t in tokens)


def test_a_run_without_repeats_or_memory_gets_what_it_has():
    from nested_learning import Ablation
    recording, _ = record(tiny_model(), "abcdefghij", ablation=Ablation(memory=False))
    assert tour_stops(recording, find_repeats(recording.tokens.tolist())) == []
    recording, _ = record(tiny_model(), "abcdefghij")
    assert [t for t, _ in tour_stops(recording, [])] == [int(np.nanargmax(mean_surprise(recording)))]
