"""Per-token recording of memory dynamics: ``record(model, text)`` -> :class:`Recording`."""
from .recorder import DEFAULT_MAX_TOKENS, record
from .recording import Recording, RecordingError

__all__ = ["DEFAULT_MAX_TOKENS", "Recording", "RecordingError", "record"]
