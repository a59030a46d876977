"""Training data and a tiny training config for the training tests."""
from nested_learning.training import TrainConfig
from tests.conftest import TINY

SENTENCES = ["the cat sat on the mat.", "a dog ran in the park.", "birds sing in the morning.",
             "the sun is warm today.", "we read a book at night."]


def write_text(folder, n_files=40):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        (folder / f"doc{i:02d}.txt").write_text(" ".join(SENTENCES[(i + j) % 5] for j in range(30)))
    return folder


def tiny_config(tmp_path, **changes) -> TrainConfig:
    settings = dict(out=str(tmp_path / "run" / "model.safetensors"), data=[str(write_text(tmp_path / "text"))],
                    model_overrides=dict(TINY), steps=6, batch_size=4, seq_len=64, bptt=32, lr=3e-3, min_lr=3e-4,
                    warmup_steps=2, heldout_fraction=0.1, checkpoint_every=3, eval_every=3, eval_windows=4,
                    eval_task_samples=8, log_every=1, command="pytest")
    settings.update(changes)
    return TrainConfig(**settings)
