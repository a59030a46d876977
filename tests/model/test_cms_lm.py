"""cms_objective="lm": each CMS level learns from the next-token loss (docs/model-options.md).

The oracle below is written per token: the gradient of one token's loss w.r.t. every level's W, taken by
rereading the token's piece up to it from the piece's start state with W as a fresh leaf. It uses the
model only as a reader with frozen levels (a call without targets inside one block)."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from nested_learning import Ablation, HopeState
from nested_learning.memories.cms import lm_pieces
from nested_learning.model import IGNORE
from nested_learning.training.loss import segmented_loss
from tests.conftest import random_tokens, tiny_model


def lm_model(preset="hope", periods=(2, 4), seed=0, **overrides):
    model = tiny_model(preset, seed=seed, cms_objective="lm", cms_periods=periods, **overrides)
    with torch.no_grad():  # non-zero initial weights and a brisk rate, so every update shows
        for block in model.blocks:
            for level in block.cms.levels:
                level.initial_memory.normal_(std=0.3)
                level.lr_logit.fill_(2.0)
    return model


def shifted(tokens):
    """Each position's next token; the last position's is unknown."""
    return torch.cat([tokens[:, 1:], torch.full_like(tokens[:, :1], IGNORE)], dim=1)


def with_levels(state, memories, pendings):
    layers = [dataclasses.replace(layer, cms=[dataclasses.replace(level, memory=memories[i][j], pending=pendings[i][j])
                                              for j, level in enumerate(layer.cms)])
              for i, layer in enumerate(state.layers)]
    return HopeState(state.position, layers)


def oracle(model, tokens, targets, cuts=()):
    """Logits [B, T, V] and final state of the lm objective, token by token. A piece ends where any level's
    block ends, at every ``cuts`` position (call edges) and at T; a token's gradient runs through the
    positions of its piece up to it."""
    B, T = tokens.shape
    periods = model.config.cms_periods
    levels = [block.cms.levels for block in model.blocks]
    state = model.init_state(B)
    memories = [[level.memory.detach() for level in layer.cms] for layer in state.layers]
    pendings = [[torch.zeros_like(m) for m in row] for row in memories]
    ends = sorted({t for t in range(1, T + 1) if any(t % p == 0 for p in periods)} | set(cuts) | {T})
    logits, a = [], 0
    for b in ends:
        start = with_levels(state, memories, pendings)
        for t in range(a, b):
            leaves = [[m.clone().requires_grad_() for m in row] for row in memories]
            out = model(tokens[:, a:t + 1], state=with_levels(start, leaves, pendings))
            logits.append(out.logits[:, -1].detach())
            known = targets[:, t] != IGNORE
            if known.any():
                loss = F.cross_entropy(out.logits[known, -1], targets[known, t], reduction="sum")
                flat = [leaf for row in leaves for leaf in row]
                grads = iter(torch.autograd.grad(loss, flat))
                for i, row in enumerate(levels):
                    for j, level in enumerate(row):
                        pendings[i][j] = pendings[i][j] - level.learning_rate().detach() * next(grads)
        with torch.no_grad():
            state = model(tokens[:, a:b], state=start).state
        for i, row in enumerate(levels):
            for j, level in enumerate(row):
                if b % level.period == 0:
                    retention = torch.sigmoid(level.retention_logit).detach()
                    memories[i][j] = retention * memories[i][j] + pendings[i][j]
                    pendings[i][j] = torch.zeros_like(pendings[i][j])
        a = b
    return torch.stack(logits, 1), with_levels(state, memories, pendings)


def assert_close(actual, expected, rel=1e-4):
    scale = expected.abs().max().clamp(min=1e-6)
    assert (actual - expected).abs().max() <= rel * scale, float((actual - expected).abs().max() / scale)


def assert_levels_close(state, expected):
    for layer, layer_expected in zip(state.layers, expected.layers):
        for level, level_expected in zip(layer.cms, layer_expected.cms):
            assert_close(level.memory, level_expected.memory)
            assert_close(level.pending, level_expected.pending)


@pytest.mark.parametrize("preset, periods", [("hope", (2, 4)), ("hope", (3, 8)), ("hope-paper", (2, 5))])
def test_lm_objective_matches_per_token_oracle(preset, periods):
    model = lm_model(preset, periods)
    tokens = random_tokens(2, 13, seed=1)
    targets = shifted(tokens)
    targets[1, 4] = IGNORE  # a token without a target adds nothing
    expected_logits, expected_state = oracle(model, tokens, targets)
    out = model(tokens, targets=targets)
    assert_close(out.logits, expected_logits)
    assert_levels_close(out.state, expected_state)
    # the levels did learn: the W read at the end is not where the block clock alone (retention) takes it
    no_targets = model(tokens)
    assert (out.logits[:, -1] - no_targets.logits[:, -1]).abs().max() > 1e-3
    assert out.state.position == 13


def test_calls_split_on_piece_edges_equal_one_call_and_mid_piece_cuts_truncate():
    model = lm_model(periods=(4,))
    tokens = random_tokens(1, 14, seed=2)
    targets = shifted(tokens)
    whole = model(tokens, targets=targets)
    first = model(tokens[:, :8], targets=targets[:, :8])
    second = model(tokens[:, 8:], state=first.state, targets=targets[:, 8:])
    assert_close(torch.cat([first.logits, second.logits], 1), whole.logits)
    assert_levels_close(second.state, whole.state)
    # A call edge inside a block: its tokens' gradients are summed across the calls, never dropped, and the
    # update waits for the block's end; gradient paths crossing the edge are cut (the oracle's ``cuts``).
    first = model(tokens[:, :6], targets=targets[:, :6])
    assert torch.equal(first.state.layers[0].cms[0].memory, model(tokens[:, :4], targets=targets[:, :4]).state.layers[0].cms[0].memory)
    assert first.state.layers[0].cms[0].pending.abs().sum() > 0
    second = model(tokens[:, 6:], state=first.state, targets=targets[:, 6:])
    expected_logits, expected_state = oracle(model, tokens, targets, cuts=(6,))
    assert_close(torch.cat([first.logits, second.logits], 1), expected_logits)
    assert_levels_close(second.state, expected_state)


def test_causal_a_logit_never_sees_its_own_or_later_targets():
    model = lm_model(periods=(2, 4))
    tokens = random_tokens(1, 12, seed=3)
    changed = tokens.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 256
    a = model(tokens, targets=shifted(tokens)).logits
    b = model(changed, targets=shifted(changed)).logits
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:], atol=1e-3)


def test_without_autograd_same_values_and_a_detached_state():
    model = lm_model(periods=(2, 4))
    tokens = random_tokens(2, 10, seed=4)
    targets = shifted(tokens)
    with_grad = model(tokens, targets=targets)
    with torch.no_grad():
        without = model(tokens, targets=targets)
    assert_close(without.logits, with_grad.logits.detach())
    assert not without.logits.requires_grad
    assert not any(t.requires_grad for t in without.state.tensors().values())
    assert with_grad.state.layers[0].cms[0].memory.requires_grad  # training reaches W's history


def test_without_targets_levels_read_and_keep_their_clock():
    """No targets (generated text): no gradient; a block end still applies retention and the pending sum."""
    model = lm_model(periods=(4,))
    tokens = random_tokens(1, 6, seed=5)
    with torch.no_grad():
        state = model(tokens[:, :2], targets=shifted(tokens[:, :3])[:, :2]).state
        level = model.blocks[0].cms.levels[0]
        before = state.layers[0].cms[0]
        after = model(tokens[:, 2:5], state=state).state.layers[0].cms[0]  # crosses the block end at 4
        retention = torch.sigmoid(level.retention_logit)
    assert before.pending.abs().sum() > 0
    assert_close(after.memory, retention * before.memory + before.pending)
    assert after.pending.abs().sum() == 0


def test_generate_learns_from_the_prompt_only_and_leaves_parameters_alone():
    model = lm_model(periods=(2, 4))
    prompt = random_tokens(1, 9, seed=6)
    params = {k: v.clone() for k, v in model.state_dict().items()}
    generated = model.generate(prompt, max_new_tokens=0)
    with torch.no_grad():
        expected = model(prompt, targets=shifted(prompt)).state
    assert_levels_close(generated.state, expected)
    longer = model.generate(prompt, max_new_tokens=5)
    assert longer.tokens.shape == (1, 5) and longer.state.position == 14
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())


def test_ablations_stop_lm_updates():
    model = lm_model(periods=(2,))
    tokens = random_tokens(1, 8, seed=7)
    start = model.init_state(1)
    for ablation in (Ablation(test_time_updates=False), Ablation(cms=False), Ablation(cms_levels_off=frozenset({0}))):
        with torch.no_grad():
            state = model(tokens, state=start, ablation=ablation, targets=shifted(tokens)).state
        assert torch.equal(state.layers[0].cms[0].memory, start.layers[0].cms[0].memory), ablation


def test_a_training_step_reaches_the_slow_parameters():
    """The trainer's own loss (segmented_loss passes the targets): finite, and the outer gradient reaches
    every level's slow parameters: U (key_proj), the initial W, the learning rate and the retention."""
    model = lm_model(periods=(2, 4)).train()
    tokens = random_tokens(2, 17, seed=8)
    nats, count = segmented_loss(model, tokens, torch.ones_like(tokens, dtype=torch.float32), 8, backward_scale=1.0)
    assert torch.isfinite(nats) and count == 32
    for block in model.blocks:
        for level in block.cms.levels:
            for name in ("key_proj.weight", "initial_memory", "lr_logit", "retention_logit"):
                grad = level.get_parameter(name).grad
                assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_slow_periods_keep_a_fixed_size_state():
    """Periods 16, 128, 1,024: the state holds one W and one pending sum per level, whatever the position."""
    model = lm_model("hope-paper", periods=(16, 128, 1024))
    tokens = random_tokens(1, 24, seed=9)
    start = dataclasses.replace(model.init_state(1), position=120)  # 8 tokens before the 128 level's block end
    with torch.no_grad():
        state = model(tokens, state=start, targets=shifted(tokens)).state
    shapes = {k: v.shape for k, v in start.tensors().items()}
    assert {k: v.shape for k, v in state.tensors().items()} == shapes
    memory = lambda s, j: s.layers[0].cms[j].memory
    assert not torch.equal(memory(state, 0), memory(start, 0)) and not torch.equal(memory(state, 1), memory(start, 1))
    assert torch.equal(memory(state, 2), memory(start, 2))  # 144 < 1,024: still accumulating
    assert state.layers[0].cms[2].pending.abs().sum() > 0
    assert lm_pieces(1000, 60, (16, 128, 1024)) == [(0, 8), (8, 24), (24, 40), (40, 56), (56, 60)]


def test_a_recording_follows_the_lm_levels_as_the_model_holds_them(tmp_path):
    """record() lets the levels learn from the text's next tokens (as generate() does for a prompt) and keeps
    each level's weights after every update: cms_weights after token t equals the state of the model run up
    to it with the same targets and the same call edge (the recording starts mid-block); the traced call's
    logits are the untraced call's; a saved file with disordered update tokens is refused."""
    from nested_learning.recording import Recording, RecordingError, record
    model = tiny_model(cms_objective="lm", cms_periods=[2, 4])
    tokens = random_tokens(1, 23)[0]
    next_tokens = torch.cat([tokens[1:], torch.tensor([IGNORE])])
    with torch.no_grad():
        start = model(tokens[None, :3], targets=next_tokens[None, :3]).state
    recording, _ = record(model, tokens[3:], state=start)
    for t in (0, 4, 8, 19):  # after updates of both levels, of one, and between
        with torch.no_grad():
            state = model(tokens[None, 3:t + 4], state=start, targets=next_tokens[None, 3:t + 4]).state
        for level in (0, 1):
            assert torch.allclose(recording.cms_weights(1, level, t), state.layers[1].cms[level].memory[0, 0], rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        logits = model(tokens[None, 3:], state=start, targets=next_tokens[None, 3:]).logits[0]
    expected = F.cross_entropy(logits[:-1], tokens[4:], reduction="none")
    torch.testing.assert_close(recording.stream("loss")[:-1], expected, rtol=1e-5, atol=1e-6)
    events = recording.cms_events()
    assert events[(events.layer == 0) & (events.level == 1)]["position"].tolist() == [3, 7, 11, 15, 19]  # block ends
    assert events["objective_before"].isna().all()  # the level's objective is the model's loss: not replayed
    bad = dict(recording.tensors)
    bad["layers.0.cms.updates.1.tokens"] = bad["layers.0.cms.updates.1.tokens"].flip(0)
    with pytest.raises(RecordingError, match="increasing token indices"):
        Recording.load(Recording(recording.config, bad).save(tmp_path / "bad.safetensors"))
