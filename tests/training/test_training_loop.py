"""The training loop: it learns, truncated BPTT, schedule, checkpoints + metrics, exact resume, errors."""
import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nested_learning import load_checkpoint
from nested_learning.cli import main
from nested_learning.training import TrainConfig, learning_rate, train
from nested_learning.training.loss import segmented_loss
from nested_learning.metrics_file import read_metrics
from nested_learning.training.resume import resume_path
from tests.conftest import TINY, random_tokens, tiny_model
from tests.support.training import tiny_config, write_text

def train_losses(path) -> list[float]:
    return [r["loss"] for r in read_metrics(path) if r["kind"] == "train"]


def test_training_beats_random_init_and_writes_checkpoint_and_metrics(tmp_path):
    config = tiny_config(tmp_path, steps=40, eval_every=20, checkpoint_every=20, log_every=5)
    report = train(config)
    assert report["updates_on"]["heldout_bpb"] < report["random_init_heldout_bpb"] - 2.0  # 8 bits -> well under 6
    model = load_checkpoint(config.out, device="cpu")
    meta = model.checkpoint_metadata
    assert meta["status"] == "complete" and meta["command"] == "pytest" and meta["step"] == 40
    assert meta["eval"]["updates_on"]["heldout_bpb"] == report["updates_on"]["heldout_bpb"]
    assert set(meta["eval"]["updates_off"]["tasks"]) == {"recall", "repeat", "passkey"}
    records = read_metrics(tmp_path / "run" / "model.metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(5, 41, 5))
    assert [r["step"] for r in records if r["kind"] == "eval"] == [20, 40]
    assert all(math.isfinite(r["heldout_bpb"]) for r in records if r["kind"] == "eval")
    periodic, final = [r for r in records if r["kind"] == "eval"]  # the same keys, the final line included
    assert set(periodic) - {"step", "tokens"} == set(final) - {"step", "tokens"}
    repeated = report["updates_on"]["repeated_text"]
    assert final["repeated_text_second_minus_first"] == repeated["second"] - repeated["first"]
    assert meta["metrics"] == records  # the curves travel with the checkpoint (the dashboard plots them)
    assert not resume_path(config.out).exists()  # a finished run leaves nothing to resume


def test_repeated_text_loss_scores_each_reading_of_the_doubled_window():
    import torch.nn.functional as F
    from nested_learning.training.evaluate import quick_report, repeated_text_loss
    model = tiny_model().eval()
    windows = random_tokens(3, 41)
    result = repeated_text_loss(model, windows, length=20)
    doubled = torch.cat([windows[:, :20], windows[:, :20]], dim=1)
    with torch.no_grad():
        nats = F.cross_entropy(model(doubled[:, :-1]).logits.flatten(0, 1), doubled[:, 1:].flatten(), reduction="none")
    nats = nats.view(3, 39)
    assert result["first"] == pytest.approx(nats[:, :19].mean().item(), rel=1e-5)  # byte 0 has no context
    assert result["second"] == pytest.approx(nats[:, 19:].mean().item(), rel=1e-5)
    report = quick_report(model, windows, 16, [], 4, 0)
    assert report["repeated_text_second_minus_first"] == pytest.approx(
        repeated_text_loss(model, windows)["second"] - repeated_text_loss(model, windows)["first"], rel=1e-5)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    straight = tiny_config(tmp_path / "a", reread_fraction=0.5)
    train(straight)

    interrupted = tiny_config(tmp_path / "b", reread_fraction=0.5)

    def stop_after_four(step, record):
        if step == 4:  # past the checkpoint at step 3: steps 4.. are redone after resuming
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(interrupted, on_step=stop_after_four)
    assert resume_path(interrupted.out).exists()
    train(tiny_config(tmp_path / "b", resume=True, reread_fraction=0.5))

    a, b = load_checkpoint(straight.out, device="cpu"), load_checkpoint(interrupted.out, device="cpu")
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    assert train_losses(tmp_path / "a" / "run" / "model.metrics.jsonl") == train_losses(tmp_path / "b" / "run" / "model.metrics.jsonl")
    assert len(train_losses(tmp_path / "b" / "run" / "model.metrics.jsonl")) == 6  # step 4 logged once, not twice


def test_resume_refuses_changed_settings(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path), on_step=lambda step, record: step == 3 and (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(ValueError, match="cannot resume: --lr was 0.003, now 0.001"):
        train(tiny_config(tmp_path, resume=True, lr=1e-3))
    with pytest.raises(ValueError, match="unfinished run; add --resume"):
        train(tiny_config(tmp_path))
    # A run saved before --reread-fraction existed counts as its default (0), not as a mismatch.
    path = resume_path(tiny_config(tmp_path).out)
    with safe_open(str(path), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    state = json.loads(meta["state"])
    del state["settings"]["reread_fraction"]
    save_file(tensors, str(path), {**meta, "state": json.dumps(state)})
    with pytest.raises(ValueError, match="cannot resume: --reread-fraction was 0.0, now 0.5"):
        train(tiny_config(tmp_path, resume=True, reread_fraction=0.5))
    train(tiny_config(tmp_path, resume=True))


def test_truncated_bptt_keeps_the_forward_and_cuts_the_gradient():
    model = tiny_model().train()
    tokens = random_tokens(2, 49)
    weights = torch.ones(2, 49)
    grads, losses = {}, {}
    for segment in (48, 16):
        model.zero_grad()
        losses[segment], count = segmented_loss(model, tokens, weights, segment, backward_scale=1.0)
        grads[segment] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    model.zero_grad()
    out = model(tokens[:, :-1])
    full = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), tokens[:, 1:].flatten(), reduction="sum")
    full.backward()
    assert count == 96
    assert torch.allclose(losses[48], losses[16].to(losses[48].dtype), rtol=1e-5)  # the state carries across segments
    assert torch.allclose(losses[48].float(), full.detach(), rtol=1e-5)
    assert torch.allclose(grads[48], torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]), atol=1e-6)
    assert not torch.allclose(grads[16], grads[48], atol=1e-4)  # gradients stop at segment boundaries


def test_learning_rate_warms_up_then_decays_to_the_minimum():
    config = TrainConfig(out="x", steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-4)
    rates = [learning_rate(s, config) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[55] == pytest.approx(5.5e-4) and learning_rate(100, config) == pytest.approx(1e-4)


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")  # rms_norm falls back to unfused under bf16
def test_bf16_autocast_runs_and_changes_the_numbers(tmp_path):
    losses = {}
    for precision in ("fp32", "bf16"):
        config = tiny_config(tmp_path / precision, steps=2, precision=precision, checkpoint_every=0, eval_every=0)
        train(config)
        losses[precision] = train_losses(tmp_path / precision / "run" / "model.metrics.jsonl")
    assert all(math.isfinite(x) for x in losses["bf16"]) and losses["bf16"] != losses["fp32"]


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps must be a positive integer, got 0"),
    (["--seq-len", "999999999"], "--seq-len 999999999 is absurd"),
    (["--set", "d_model=-4"], "config.d_model must be a positive integer"),
    (["--set", "colour=3"], "unknown config field(s): colour"),
    (["--lr", "5"], "--lr must be in (0, 1]"),
    (["--reread-gap", "-1"], "--reread-gap must be an integer in [0, --seq-len], got -1"),
    (["--tasks", "sing"], "unknown task 'sing'"),
    (["--resume"], "no training state to resume from"),
    (["--data", "/no/such/corpus"], "/no/such/corpus: no such file or folder"),
])
def test_bad_settings_print_one_line_and_exit_2(tmp_path, capsys, args, message):
    base = ["train", "--data", str(write_text(tmp_path / "t", 3)), "--out", str(tmp_path / "m.safetensors")]
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_cli_trains_and_prints_the_summary(tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    args = ["train", "--data", str(write_text(tmp_path / "t")), "--out", str(out), "--steps", "2", "--batch-size", "2",
            "--seq-len", "64", "--bptt", "32", "--warmup-steps", "1", "--eval-windows", "2", "--eval-task-samples", "4",
            "--heldout-fraction", "0.1", "--tasks", "repeat", "--threads", "2"]
    args += [f"--set={k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in TINY.items()]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary["tasks"]) == {"repeat"} and summary["heldout_bpb"] > 0
    assert load_checkpoint(out, device="cpu").config.d_model == TINY["d_model"]


def test_tasks_alone_need_no_text(tmp_path):
    config = TrainConfig(out=str(tmp_path / "tasks.safetensors"), data=[], task_fraction=1.0, tasks=["repeat"],
                         model_overrides=dict(TINY), steps=2, batch_size=2, seq_len=64, bptt=64, warmup_steps=1,
                         eval_every=1, checkpoint_every=0, eval_task_samples=4, command="pytest")
    report = train(config)
    assert "heldout_bpb" not in report["updates_on"] and set(report["updates_on"]["tasks"]) == {"repeat"}
    evals = [r for r in read_metrics(tmp_path / "tasks.metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [1, 2] and all("repeat_accuracy" in r for r in evals)
    with pytest.raises(ValueError, match="no training data: give --data"):
        train(TrainConfig(out=str(tmp_path / "x.safetensors"), data=[], task_fraction=0.5))


def test_init_starts_from_a_checkpoint(tmp_path):
    small = dict(batch_size=1, seq_len=32, bptt=32, eval_windows=1, eval_task_samples=1, checkpoint_every=0, eval_every=0)
    first = tiny_config(tmp_path / "a", steps=1, warmup_steps=0, **small)
    train(first)
    tuned = TrainConfig(**{**tiny_config(tmp_path / "b", steps=1, lr=1e-12, min_lr=0.0, warmup_steps=0, **small).to_dict(),
                           "model_overrides": {}, "init": first.out})
    train(tuned)
    a, b = load_checkpoint(first.out, device="cpu"), load_checkpoint(tuned.out, device="cpu")
    assert b.checkpoint_metadata["train_config"]["init"] == first.out
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-9)  # one step at lr 1e-12: the weights are the checkpoint's
    with pytest.raises(ValueError, match="--init takes the model config from the checkpoint: drop --set"):
        train(TrainConfig(**{**tuned.to_dict(), "model_overrides": {"d_model": 64}}))


def test_task_accuracy_scores_exactly_the_answer_bytes():
    """A model that always predicts '7': its recall scores are the share of answer digits (and whole
    values) that are 7, counted here straight from the samples the evaluation draws."""
    from types import SimpleNamespace

    from nested_learning.training.tasks import make_sample
    from nested_learning.training.evaluate import EVAL_TASKS, task_accuracy

    class AlwaysSeven(torch.nn.Module):
        device = torch.device("cpu")

        def forward(self, tokens, ablation=None):
            logits = torch.zeros(*tokens.shape, 256)
            logits[..., ord("7")] = 1.0
            return SimpleNamespace(logits=logits)

    result = task_accuracy(AlwaysSeven(), "recall", n_samples=40, seed=3)
    samples = [make_sample("recall", f"eval:3:recall:{i}", **EVAL_TASKS["recall"]) for i in range(40)]
    digits = "".join(s.answers for s in samples)
    values = [s.answers[i:i + 2] for s in samples for i in range(0, len(s.answers), 2)]
    assert result["byte_accuracy"] == pytest.approx(digits.count("7") / len(digits))
    assert result["answer_accuracy"] == pytest.approx(values.count("77") / len(values))
    assert 0 < result["byte_accuracy"] < 0.3
