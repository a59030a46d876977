import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from nested_learning import save_checkpoint
from nested_learning.metrics_file import metrics_path
from nested_learning.viz import models
from tests.conftest import tiny_model
from tests.support.apptest import APP


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    model = tiny_model()
    with torch.no_grad():  # like a trained model: CMS levels start from non-zero weights
        for name, p in model.named_parameters():
            if name.endswith("initial_memory") and ".cms." in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    path = save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny-app.safetensors", {"note": "tests"})
    lines = [{"kind": "train", "step": s, "loss": 5.0 - s / 10} for s in range(1, 6)]
    metrics_path(path).write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    return path


@pytest.fixture
def app(tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(models, "DEFAULT_CHECKPOINT", tiny_checkpoint)
    return lambda: AppTest.from_file(APP, default_timeout=90)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium for one test module (a missing playwright package fails the tests: no skip)."""
    from playwright.sync_api import sync_playwright
    from tests.support.browser import launch_chromium
    with sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()
