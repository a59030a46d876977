"""A narrated step-through of a run, for a lecturer: a few tokens worth stopping at, each with a caption
that states what the recording measured there (the numbers, never a claim they do not show). No
Streamlit here: the memory player steps through the stops in the browser."""
from __future__ import annotations

import numpy as np

from ..recording import Recording
from .repeats import Repeat
from .timelines import mean_surprise

EXCERPT = 40  # characters of a repeated span quoted in a caption


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def tour_stops(recording: Recording, repeats: list[Repeat]) -> list[tuple[int, str]]:
    """(token index, caption) in the order a lecturer tells them: the first repeated span's first reading,
    its repeat's first byte, a few bytes into the repeat, the last repeat, and the memory's most surprising
    token."""
    loss = recording.stream("loss").double().numpy()
    tokens = recording.tokens.tolist()
    stops = []
    if repeats:
        r = repeats[0]
        quoted = bytes(tokens[r.source:r.source + min(r.length, EXCERPT)]).decode("utf-8", errors="replace")
        first, again = _mean(loss[r.source:r.source + r.length]), _mean(loss[r.start:r.start + r.length])
        inside = r.start + min(r.length - 1, 8)
        stops += [(r.source, f"First reading of \u201c{quoted}\u201d: the memory has not read it yet. Mean loss over its "
                             f"{r.length} bytes: {first:.2f} nats."),
                  (r.start, f"The same {r.length} bytes again, {r.start - r.source} tokens later. The first byte costs "
                            f"{loss[r.start]:.2f} nats: nothing yet tells the model which earlier text this is."),
                  (inside, f"{inside - r.start} bytes into the repeat: {loss[inside]:.2f} nats here against "
                           f"{loss[r.source + inside - r.start]:.2f} at the same byte of the first reading; over the whole "
                           f"repeat {again:.2f} against {first:.2f}.")]
        if len(repeats) > 1:
            last = repeats[-1]
            stops.append((last.start + min(last.length - 1, 8),
                          f"Repeat {len(repeats)} of {len(repeats)}: mean loss {_mean(loss[last.start:last.start + last.length]):.2f} "
                          f"nats against {_mean(loss[last.source:last.source + last.length]):.2f} where it was read before."))
    surprise = mean_surprise(recording)
    if np.isfinite(surprise).any():
        peak = int(np.nanargmax(surprise))
        stops.append((peak, f"The memory's most surprising token in this run (surprise {surprise[peak]:.3g}, the run's "
                            f"median {float(np.nanmedian(surprise)):.3g}): the write here is among the largest."))
    return stops
