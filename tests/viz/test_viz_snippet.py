"""The Python snippet reproduces the Explore view: run it, get the numbers the dashboard showed."""
import contextlib
import io

import torch

from nested_learning import load_checkpoint
from nested_learning.recording import record
from nested_learning.viz.models import ModelChoice
from nested_learning.viz.snippet import reproduce


def test_the_snippet_reproduces_the_recording(tmp_path):
    from nested_learning import save_checkpoint
    from tests.conftest import tiny_model
    path = save_checkpoint(tiny_model(), tmp_path / "tiny.safetensors")
    text = 'the "cat" sat.\nthe cat sat again. \U0001F600'
    code = reproduce(ModelChoice("upload", str(path)), text, ["cms.1"], layer=1, head=1, token=5,
                     memory_tokens_before=12)
    assert "this starts fresh" in code
    scope: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(code, "snippet", "exec"), scope)  # noqa: S102 (our own generated code)
    expected, _ = record(load_checkpoint(path), text, ablation=scope["Ablation"].from_names(["cms.1"]))
    torch.testing.assert_close(scope["M_t"], expected.memory_matrix(1, 1, 5))
    assert "mean_loss" in out.getvalue()
    shipped = reproduce(ModelChoice("shipped", "hope-default.safetensors"), "x", ["memory"], 0, 0, 0)
    assert 'load_checkpoint("assets/hope-default.safetensors")' in shipped and "memory_matrix" not in shipped
    preset = reproduce(ModelChoice("preset", "hope"), "x", [], 0, 0, 0)
    assert "from_preset('hope', seed=" in preset


def test_the_snippet_of_a_2_layer_memorys_w2_view_gives_w2(tmp_path):
    from nested_learning import save_checkpoint
    from tests.conftest import tiny_model
    path = save_checkpoint(tiny_model(memory_depth=2), tmp_path / "deep.safetensors")
    code = reproduce(ModelChoice("upload", str(path)), "the cat sat on the mat.", [], 0, 1, 9, matrix="hidden_memory")
    scope: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "snippet", "exec"), scope)  # noqa: S102 (our own generated code)
    expected, _ = record(load_checkpoint(path), "the cat sat on the mat.")
    torch.testing.assert_close(scope["W2_t"], expected.memory_matrix(0, 1, 9, "hidden_memory"))
