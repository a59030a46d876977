"""The shipped checkpoint streams the dashboard's whole session (MAX_SESSION_TOKENS) of ordinary and
hostile input in run-sized calls with finite outputs and bounded fast weights."""
import pytest
import torch

from nested_learning import load_checkpoint
from nested_learning.validation import targets
from nested_learning.viz import models
from nested_learning.viz.session import MAX_RUN_TOKENS, MAX_SESSION_TOKENS

pytestmark = pytest.mark.slow

SHIPPED = models.ROOT / "assets" / "hope-default.safetensors"
# Before the projection memories were bounded, a repeated phrase drove layer 0's memory to ~1e9 by
# 16,384 tokens (growing x2 every ~1,000); bounded, every fast weight stays at tens (README).
CEILING = 1e3


def _inputs() -> dict[str, bytes]:
    code = b"".join(p.read_bytes() for p in sorted((models.ROOT / "nested_learning").glob("*.py")))
    prose = (models.ROOT / "README.md").read_bytes()
    random_bytes = bytes(torch.randint(0, 256, (MAX_SESSION_TOKENS,), generator=torch.Generator().manual_seed(0)).tolist())
    return {"prose": prose, "code": code, "one byte": b"x", "spaces": b" ", "phrase": b"the cat sat on the mat. ",
            "random bytes": random_bytes}


def test_the_shipped_model_streams_a_whole_session_bounded():
    model = load_checkpoint(SHIPPED, device="cpu").eval()
    for name, text in _inputs().items():
        text = (text * (MAX_SESSION_TOKENS // len(text) + 1))[:MAX_SESSION_TOKENS]
        out = targets.streaming(model, text, call_tokens=MAX_RUN_TOKENS)
        assert out["finite"] and len(out["per_call"]) == MAX_SESSION_TOKENS // MAX_RUN_TOKENS, name
        for stream, norm in out["max_norm"].items():
            assert norm < CEILING, (name, stream, norm, [round(call[stream], 1) for call in out["per_call"]])
