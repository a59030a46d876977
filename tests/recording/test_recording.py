"""Recording: streams equal an independent per-token reference; states rebuild exactly; files; budgets."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from nested_learning import Ablation, HopeTransformer
from nested_learning.recording import Recording, RecordingError, record, streams
from nested_learning.recording.reconstruction import linear_scan
from tests.conftest import random_tokens, tiny_model
from tests.support.headers import rewrite_header
from tests.support.keys import traced_keys, traced_values, with_stored_keys, with_stored_writes


def reference_features(x, expansion):
    """Keys and queries of width expansion * d, DPFP written out index by index (ops.dpfp is under test)."""
    x = F.normalize(x, dim=-1)
    if expansion == 1:
        return x
    r = torch.cat([x.clamp_min(0), (-x).clamp_min(0)], -1)
    n = r.shape[-1]
    features = [r[..., i] * r[..., (i - j) % n] for j in range(1, expansion // 2 + 1) for i in range(n)]
    return F.normalize(torch.stack(features, -1), dim=-1)


def reference_memory(module, h):
    """An independent per-token SelfModifyingMemory: plain loops, autograd for the projection gradients."""
    config, H, d, D = module.config, module.n_heads, module.head_dim, module.config.d_model
    C = config.memory_chunk_size
    state = module.init_state(1)
    memory = state.memory[0].detach().clone()
    reference = memory.clone()
    w_in, w_out = state.projections.w_in[0].detach().clone(), state.projections.w_out[0].detach().clone()
    pending_in, pending_out, pending_log = torch.zeros_like(w_in), torch.zeros_like(w_out), 0.0
    streams = {name: [] for name in ("surprise", "gate_surprise", "learning_rate", "retention")}

    def project(wi, wo, i, z):
        return z + wo[i] @ F.silu(wi[i] @ F.normalize(z, dim=-1))

    with torch.no_grad():
        inputs = module.in_proj(h)  # [T, 4D]: q, k, v and gate inputs ([T, 3D] without k, with shifted keys)
        n_conv = module.conv_channels
        if module.conv is not None:  # the causal conv on q(/k)/v, written as torch's conv1d over zero history
            width = module.conv.width
            convolved = F.pad(inputs[:, :n_conv].T, (width - 1, 0))
            inputs = torch.cat([F.conv1d(convolved[None], module.conv.weight[:, None], groups=n_conv)[0].T,
                                inputs[:, n_conv:]], 1)
        if config.shifted_keys:  # k_t = q_{t-1}; the stream's first token takes the learned initial query
            previous = torch.cat([module.initial_query[None], inputs[:-1, :D]])
            inputs = torch.cat([inputs[:, :D], previous, inputs[:, D:]], 1)
    for t in range(h.shape[0]):
        with torch.no_grad():
            q_in, k_in, v_in, g_in = inputs[t].split(D)
            k_full, v_full, g = (project(w_in, w_out, i, z) for i, z in enumerate((k_in, v_in, g_in)))
            k, v = reference_features(k_full.view(H, d), config.key_expansion), v_full.view(H, d)
            gate_surprise = (v - torch.einsum("hvk,hk->hv", reference, k)).norm(dim=-1) / (v.norm(dim=-1) + 1e-2)
            logits = module.gates(g)
            lr = config.max_learning_rate * torch.sigmoid(logits[:H] + module.surprise_weight * gate_surprise)
            retention = 1 - (1 - config.min_retention) * torch.sigmoid(logits[H:2 * H])
            error = v - torch.einsum("hvk,hk->hv", memory, k)
            memory = retention[:, None, None] * memory + lr[:, None, None] * error[:, :, None] * k[:, None, :]
        for name, value in zip(streams, (error.norm(dim=-1), gate_surprise, lr, retention)):
            streams[name].append(value)
        wi, wo = w_in.clone().requires_grad_(), w_out.clone().requires_grad_()
        with torch.enable_grad():  # 1/2 ||P(k) - P(v)||^2 per projection memory, the target held fixed
            loss = sum(0.5 * (project(wi, wo, i, k_full) - project(w_in, w_out, i, v_full)).square().sum() for i in range(3))
            grad_in, grad_out = torch.autograd.grad(loss, (wi, wo))
        # normalised LMS: each memory's step divided by 1 + a bound on ||J J^T|| for J = dP(k)/d(fast weights),
        # from autograd: ||J_in||_F^2 (unit inputs) + ||J_out||_F^2 / D (J_out J_out^T = ||h||^2 I)
        def step_norm(i):
            j_in, j_out = torch.autograd.functional.jacobian(lambda a, b: project(a, b, 0, k_full),
                                                               (w_in[i:i + 1], w_out[i:i + 1]))
            return 1 + j_in.square().sum() + j_out.square().sum() / D
        scale = lr.mean() * config.projection_learning_rate / C / torch.stack([step_norm(i) for i in range(3)])[:, None, None]
        pending_in, pending_out = pending_in + scale * grad_in, pending_out + scale * grad_out
        pending_log += retention.log().mean()
        if (t + 1) % C == 0:  # chunk boundary: one step for the projections, new gate reference
            keep = torch.exp(pending_log / C)
            w_in, w_out = keep * w_in - pending_in, keep * w_out - pending_out
            pending_in, pending_out, pending_log = torch.zeros_like(w_in), torch.zeros_like(w_out), 0.0
            reference = memory
    return {name: torch.stack(v) for name, v in streams.items()}, memory


@pytest.mark.parametrize("shifted_keys, key_expansion", [(True, 1), (False, 1), (True, 4)])
def test_streams_equal_independent_per_token_reference(shifted_keys, key_expansion):
    # without attention the memory reads norm(embed(tokens)) directly
    model = tiny_model(n_layers=1, attention=False, shifted_keys=shifted_keys, key_expansion=key_expansion)
    tokens = random_tokens(1, 29)[0]  # 29 tokens: three full chunks of 8 and a partial one
    recording, state = record(model, tokens)
    with torch.no_grad():
        h = model.blocks[0].norms["memory"](model.embed(tokens))
    expected, final_memory = reference_memory(model.blocks[0].memory, h)
    for name, value in expected.items():
        assert torch.allclose(recording.stream(f"layers.0.memory.{name}"), value, rtol=1e-4, atol=1e-5), name
    assert torch.allclose(state.layers[0].memory.memory[0], final_memory, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("preset", ["hope", "titans"])
def test_rebuilt_memory_equals_model_state(preset):
    model = tiny_model(preset)
    tokens = random_tokens(1, 37)[0]
    recording, _ = record(model, tokens)
    for t in (0, 7, 8, 20, 36):
        with torch.no_grad():
            state = model(tokens[None, :t + 1]).state
        for layer in (0, 1):
            for head in (0, 1):
                expected = state.layers[layer].memory.memory[0, head].double()
                assert torch.allclose(recording.memory_matrix(layer, head, t), expected, rtol=1e-4, atol=1e-6)
    initial = model.init_state(1).layers[1].memory.memory[0, 1].double()
    assert torch.equal(recording.memory_matrix(1, 1, -1), initial)
    delta = recording.memory_delta(0, 0, 5)
    assert torch.allclose(delta, recording.memory_matrix(0, 0, 5) - recording.memory_matrix(0, 0, 4))


def test_recording_and_state_are_ordinary_tensors():
    """record() runs under inference_mode; what it hands out must still allow in-place edits and
    training from the returned state (inference tensors allow neither)."""
    model = tiny_model()
    recording, state = record(model, random_tokens(1, 20)[0])
    assert not any(t.is_inference() for t in recording.tensors.values())
    assert not any(t.is_inference() for t in state.tensors().values())
    recording.stream("loss").mul_(1.0)
    model.train()
    model(random_tokens(1, 8, seed=1), state=state).logits.sum().backward()
    assert model.embed.weight.grad is not None


@pytest.mark.parametrize("low, high", [(0.8, 1.0), (1e-4, 1e-3), (0.5, 1.5)])
def test_linear_scan_equals_the_sequential_recurrence(low, high):
    """The closed form behind the norm streams: one run for ordinary retentions, several when tiny
    ones would push e^{-L} past its range (1e-4: ~65 tokens per run), and factors above 1."""
    g = torch.Generator().manual_seed(0)
    a = low + (high - low) * torch.rand(3, 300, generator=g, dtype=torch.float64)
    b, x0 = torch.randn(3, 300, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    expected, x = [], x0
    for t in range(300):
        x = a[:, t] * x + b[:, t]
        expected.append(x)
    assert torch.allclose(linear_scan(a, b, x0), torch.stack(expected, -1), rtol=1e-10, atol=1e-12)
    assert linear_scan(a[:, :0], b[:, :0], x0).shape == (3, 0)  # no tokens (a CMS level with no update yet)
    a[0, 100] = float("nan")  # a diverged run: NaN from there on, no error
    assert linear_scan(a, b, x0)[0, 100:].isnan().all() and not linear_scan(a, b, x0)[1:].isnan().any()


@pytest.mark.parametrize("preset", ["hope", "titans"])
def test_norm_streams_match_rebuilt_matrices(preset):
    recording, _ = record(tiny_model(preset), random_tokens(1, 30)[0])
    for layer, t, head in itertools.product((0, 1), (0, 9, 29), (0, 1)):  # every layer: the scans run batched
        memory = recording.memory_matrix(layer, head, t)
        norms = recording.stream(f"layers.{layer}.memory.memory_norm")
        assert norms[t, head] == pytest.approx(memory.norm().item(), rel=1e-4)
        delta = recording.memory_delta(layer, head, t).norm().item()
        assert recording.stream(f"layers.{layer}.memory.write_norm")[t, head] == pytest.approx(delta, rel=1e-3, abs=1e-6)


def test_cms_events_follow_the_cadence_across_recordings():
    model = tiny_model(cms_periods=(1, 3, 8))
    tokens = random_tokens(1, 40)[0]
    first, state = record(model, tokens[:13])
    second, _ = record(model, tokens[13:], state=state)
    assert second.start_position == 13
    for rec in (first, second):
        events = rec.cms_events()
        for level, period in enumerate((1, 3, 8)):
            for layer in (0, 1):
                got = events[(events.layer == layer) & (events.level == level)]["position"].tolist()
                want = [p for p in range(rec.start_position, rec.start_position + rec.n_tokens) if (p + 1) % period == 0]
                assert got == want, (layer, period)


@pytest.mark.parametrize("periods, length", [((1, 4), 21), ((2, 16), 60)])
def test_cms_event_statistics_equal_direct_computation(periods, length):
    """Short blocks (Gram matrices) and blocks longer than d_model x h / (d_model + h) (block sums)."""
    model = tiny_model(cms_periods=periods)
    tokens = random_tokens(1, length)[0]
    _, state = record(model, tokens[:6])  # the second recording starts inside a block of the slower level
    recording, _ = record(model, tokens[6:], state=state)
    _, trace = recording._replay_cms(0, trace=True)
    events = recording.cms_events()
    for level, period in enumerate(periods):
        keys = trace.levels[level].keys[0].double()
        values = trace.levels[level].values[0].double()
        for _, event in events[(events.layer == 0) & (events.level == level)].iterrows():
            t = int(event.token_index)
            before, after = recording.cms_weights(0, level, t - 1).double(), recording.cms_weights(0, level, t).double()
            assert event.update_norm == pytest.approx((after - before).norm().item(), rel=1e-3, abs=1e-6)
            block = [s for s in range(max(0, t - period + 1), t + 1)]
            objective = lambda W: 0.5 * (keys[block] @ W.T - values[block]).square().sum(-1).mean().item()
            assert event.objective_before == pytest.approx(objective(before), rel=1e-3)
            assert event.objective_after == pytest.approx(objective(after), rel=1e-3)


def test_repetition_lowers_surprise_only_with_test_time_updates():
    """Attention off, so a layer's input at a token depends only on that token unless a memory
    learned something: without updates the second reading repeats the first exactly. No conv: with
    random taps adjacent keys share 3 of 4 inputs and an untrained memory barely tells them apart
    (the trained checkpoint's recall is measured by the validation suite). 24 tokens: fewer than a
    head's width (32), so a linear memory can hold them all."""
    from nested_learning import HopeTransformer
    model = HopeTransformer.from_preset("hope", device="cpu", seed=0, attention=False, local_conv=0).eval()
    segment = torch.randint(0, 256, (24,), generator=torch.Generator().manual_seed(100))
    tokens = torch.cat([segment, segment])

    def per_token_surprise(ablation):
        recording, _ = record(model, tokens, ablation=ablation)
        surprise = torch.stack([recording.stream(f"layers.{i}.memory.surprise") for i in recording.memory_layers])
        return surprise.mean((0, 2))

    on = per_token_surprise(Ablation())
    assert on[24:].mean() < 0.95 * on[:24].mean()  # the memory recalls what it wrote
    off = per_token_surprise(Ablation(test_time_updates=False))
    assert torch.allclose(off[24:], off[:24], rtol=1e-5, atol=1e-6)  # nothing learned


def test_tables_and_csv(tmp_path):
    model = tiny_model()
    recording, _ = record(model, "abc abc abc", top_k=3, attention=True)
    frame = recording.per_token()
    assert len(frame) == 11 * 2 * 2  # tokens x layers x heads
    assert list(frame.columns[:5]) == ["token_index", "position", "token_id", "token", "loss"]
    assert frame["token"].iloc[0] == "a" and math.isnan(frame.loc[frame.token_index == 10, "loss"].iloc[0])
    tokens = recording.token_frame()
    assert {"top1", "top3_prob"} <= set(tokens.columns) and (tokens["top1_prob"] >= tokens["top2_prob"]).all()
    weights = recording.stream("layers.0.attention.weights")
    assert weights.shape[:2] == (2, 11) and torch.allclose(weights.sum(-1), torch.ones(2, 11))
    recording.to_csv(tmp_path / "run.csv")
    assert (tmp_path / "run.csv").read_text().splitlines()[0].startswith("token_index,position,token_id,token,loss,layer,head")


def test_full_states_option_matches_rebuild():
    model = tiny_model()
    recording, _ = record(model, random_tokens(1, 12)[0], full_states=True)
    full = recording.stream("full.layers.0.memory.memory")
    assert full.dtype == torch.float16 and full.shape == (12, 2, 16, model.config.memory_key_dim)  # value x key width
    assert model.config.memory_key_dim > 16  # the preset widens keys (DPFP)
    recording_without = Recording(recording.config, {k: v for k, v in recording.tensors.items() if not k.startswith("full.")})
    assert torch.allclose(full[7, 1].double(), recording_without.memory_matrix(0, 1, 7), atol=2e-3)
    assert torch.equal(recording.memory_matrix(0, 1, 7), full[7, 1].double())  # stored states are served as is


def test_file_round_trip_and_damaged_files(tmp_path):
    model = tiny_model()
    recording, _ = record(model, "hello memory", ablation=Ablation(cms_levels_off=frozenset({1})))
    path = recording.save(tmp_path / "run.safetensors")
    loaded = Recording.load(path)
    assert loaded.text == "hello memory" and loaded.config == model.config and loaded.ablation == recording.ablation
    assert set(loaded.tensors) == set(recording.tensors)
    for name, tensor in recording.tensors.items():
        assert torch.equal(tensor.nan_to_num(), loaded.tensors[name].nan_to_num()), name
    assert loaded.cms_events().equals(recording.cms_events())
    assert torch.equal(loaded.memory_matrix(1, 0, 5), recording.memory_matrix(1, 0, 5))

    data = path.read_bytes()
    cases = {"cut.safetensors": data[: len(data) // 2], "noise.safetensors": bytes(range(256)) * 20}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(RecordingError) as info:
            Recording.load(tmp_path / name)
        assert "\n" not in str(info.value)
    from nested_learning import save_checkpoint
    with pytest.raises(RecordingError, match="not a nested_learning recording"):
        Recording.load(save_checkpoint(model, tmp_path / "model.safetensors"))
    with pytest.raises(RecordingError, match="no such file"):
        Recording.load(tmp_path / "missing.safetensors")


@pytest.fixture(scope="module")
def saved_recording(tmp_path_factory):
    recording, _ = record(tiny_model(), "hello memory")
    return recording.save(tmp_path_factory.mktemp("recording") / "run.safetensors")


def rename(old, new):
    return lambda h: h.update({new: h.pop(old)})


def edit_meta(**changes):
    return lambda h: h["__metadata__"].update(changes)


@pytest.mark.parametrize("edit, message", [
    (lambda h: h.update(__metadata__=["x"]), "__metadata__ is not a JSON object of strings"),
    (rename("layers.0.memory.surprise", "layers.7.memory.surprise"), "unexpected tensor 'layers.7.memory.surprise'"),
    (rename("layers.0.memory.surprise", "layers.00.memory.surprise"), "unexpected tensor 'layers.00.memory.surprise'"),
    (rename("layers.0.cms.initial.3.memory", "layers.0.cms.initial.9.memory"), "unexpected tensor"),
    (rename("layers.0.cms.params.levels.0.lr_logit", "layers.0.cms.params.levels.0.warp"), "unexpected tensor"),
    (lambda h: h.pop("layers.1.memory.unit_keys"), "layer 1's memory lacks tensor 'layers.1.memory.unit_keys'"),
    (rename("layers.1.memory.unit_keys", "layers.1.memory.keys"), r"'layers.1.memory.keys' has shape \[12, 2, 16\], expected \[12, 2, 128\]"),
    (lambda h: h.pop("layers.0.cms.params.levels.2.key_proj.weight"), "layer 0's CMS lacks tensor"),
    (lambda h: h["topk.ids"].update(dtype="F64"), "tensor 'topk.ids' has dtype F64, expected I64"),
    (lambda h: h["loss"].update(dtype="I32"), "tensor 'loss' has dtype I32, expected a float type"),
    (lambda h: h["tokens"].update(shape=[3, 4]), "'tokens' must be one-dimensional"),
    (lambda h: h["loss"].update(shape="12"), "tensor 'loss' has a malformed shape '12'"),
    (edit_meta(ablation="[1]"), "ablation must be a list of names"),
    (edit_meta(ablation='["warp"]'), "unknown ablation 'warp'"),
    (edit_meta(text="3"), "text must be a string or null"),
    (edit_meta(meta="[]"), "meta must be a JSON object"),
    (edit_meta(start_position="-1"), "start_position must be a count of tokens"),
    (edit_meta(start_position="9" * 5000), "start_position must be a count of tokens"),
    (edit_meta(config='{"rope_base": 0}'), r"bad metadata: config.rope_base must be a number in \(1, 1e\+12\]"),
    (edit_meta(config="[" * 50 + "]" * 50), "config is nested more than 32 levels deep"),
])
def test_malformed_recording_headers(saved_recording, tmp_path, edit, message):
    with pytest.raises(RecordingError, match=message) as info:
        Recording.load(rewrite_header(saved_recording, tmp_path / "bad.safetensors", edit))
    assert "\n" not in str(info.value)


def test_limits_and_bad_input():
    model = tiny_model()
    with pytest.raises(RecordingError, match="input is 5000 tokens \\(bytes\\); the limit is 4096"):
        record(model, "x" * 5000)
    with pytest.raises(RecordingError, match="limit is 10"):
        record(model, list(range(11)), max_tokens=10)
    with pytest.raises(RecordingError, match="empty"):
        record(model, "")
    with pytest.raises(RecordingError, match="token ids"):
        record(model, [1, 999])
    with pytest.raises(RecordingError, match="batch size 1"):
        record(model, "ab", state=model.init_state(2))
    recording, _ = record(model, "emoji 👋 and \x00 control")  # any text is bytes
    assert recording.n_tokens == len("emoji 👋 and \x00 control".encode())


def test_recording_leaves_parameters_and_given_state_untouched():
    model = tiny_model()
    params = {k: v.clone() for k, v in model.state_dict().items()}
    state = model.init_state(1)
    before = {k: v.clone() for k, v in state.tensors().items()}
    record(model, "remember this", state=state)
    assert all(torch.equal(params[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(before[k], v) for k, v in state.tensors().items())


def test_a_non_finite_recording_is_refused_before_anything_is_written(tmp_path):
    rec, _ = record(tiny_model(), "abcdef")
    rec.tensors["layers.0.memory.surprise"][2, 0] = float("nan")
    path = tmp_path / "r.safetensors"
    with pytest.raises(RecordingError, match=r"not saved: tensor 'layers.0.memory.surprise' has non-finite"):
        rec.save(path)
    assert not path.exists()


@pytest.mark.parametrize("preset, key_expansion", [("hope", 8), ("hope", 1), ("titans", 4)])
def test_keys_rebuilt_from_unit_keys_are_the_models_own(tmp_path, preset, key_expansion):
    """A recording stores the unit keys (1 / key_expansion of the keys' bytes) and rebuilds phi(k) on read
    with the model's own feature map: bit for bit the keys the memory wrote with, before and after a file."""
    model = tiny_model(preset, key_expansion=key_expansion)
    tokens = random_tokens(1, 37)[0]  # several chunks of 8 and a partial one
    recording, _ = record(model, tokens)
    loaded = Recording.load(recording.save(tmp_path / "run.safetensors"))
    for layer, keys in traced_keys(model, tokens).items():
        assert streams.memory(layer, "keys") not in loaded.tensors
        assert loaded.memory_stream(layer, "unit_keys").shape[-1] * key_expansion == keys.shape[-1]
        assert torch.equal(recording.memory_stream(layer, "keys"), keys)
        assert torch.equal(loaded.memory_stream(layer, "keys"), keys)


def test_a_recording_with_the_keys_stored_reads_the_same(tmp_path):
    """Older files hold the keys phi(k) themselves: they still load, and the unit keys' recording reads
    identically (keys, memory matrices, anatomy, probe), in memory and after a save/load round trip."""
    from nested_learning.viz.anatomy import anatomy
    from nested_learning.viz.probe import recall_curve
    model = tiny_model()  # keys x 8
    tokens = random_tokens(1, 37)[0]
    recording, _ = record(model, tokens)
    older = Recording.load(with_stored_keys(recording, traced_keys(model, tokens)).save(tmp_path / "older.safetensors"))
    loaded = Recording.load(recording.save(tmp_path / "run.safetensors"))
    assert streams.memory(0, "keys") in older.tensors and streams.memory(0, "unit_keys") not in older.tensors
    for run in (recording, loaded):
        for layer, head, t in itertools.product((0, 1), (0, 1), (-1, 0, 8, 36)):
            assert torch.equal(run.memory_matrix(layer, head, t), older.memory_matrix(layer, head, t))
        assert all(torch.equal(run.memory_stream(i, "keys"), older.memory_stream(i, "keys")) for i in (0, 1))
        assert torch.equal(torch.as_tensor(anatomy(run, 1, 1, 20).key), torch.as_tensor(anatomy(older, 1, 1, 20).key))
        assert (recall_curve(run, 0, 30) == recall_curve(older, 0, 30)).all()
        assert run.per_token().equals(older.per_token())


def test_keys_phi_cannot_rebuild_are_stored_as_they_were():
    """Under bf16 autocast phi ran in bf16, so phi in float32 on the unit keys would round differently:
    the recorder keeps the keys themselves, and readers still see the model's keys."""
    model = tiny_model()
    tokens = random_tokens(1, 20)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        recording, _ = record(model, tokens)
        expected = traced_keys(model, tokens)
    for layer, keys in expected.items():
        assert streams.memory(layer, "unit_keys") not in recording.tensors
        assert torch.equal(recording.memory_stream(layer, "keys"), keys.float())


def test_a_recording_at_the_bench_size_costs_its_three_factors_per_token(tmp_path):
    """Issue 26: keys x 8 made a recording 44 KiB per token at the bench size (4 layers, d_model 256, one
    memory head). With unit keys and errors a token costs per layer three float32 vectors of 256 (unit keys,
    errors, CMS input) and six per-token numbers, plus 72 bytes of tokens and predictions: 12,456 bytes."""
    model = HopeTransformer.from_preset("hope", n_layers=4, d_model=256, n_heads=4).eval()
    size = lambda T: record(model, random_tokens(1, T)[0])[0].save(tmp_path / f"{T}.safetensors").stat().st_size
    per_token = (size(64) - size(32)) / 32
    assert per_token <= 12_456 + 64  # + the header's longer offsets


@pytest.mark.parametrize("updates", [True, False])
def test_writes_and_values_are_rebuilt_from_the_errors(tmp_path, updates):
    """A file keeps the errors e_t, not the writes and values: the writes lr_t e_t come back bit for bit as
    the recorder computed them, the values M_{t-1} k_t + e_t as the model's own to float32 rounding, with
    updates off too (the error against the unchanging memory), in memory and after a file."""
    model = tiny_model()
    tokens = random_tokens(1, 37)[0]  # several chunks of 8 and a partial one
    ablation = Ablation(test_time_updates=updates)
    recording, _ = record(model, tokens, ablation=ablation)
    loaded = Recording.load(recording.save(tmp_path / "run.safetensors"))
    values = traced_values(model, tokens, ablation=ablation)
    for layer in recording.memory_layers:
        kept = {n for n in ("errors", "writes", "values") if streams.memory(layer, n) in recording.tensors}
        assert kept == {"errors"}  # the writes and the values are rebuilt, not stored
        errors, rate = recording.memory_stream(layer, "errors"), recording.memory_stream(layer, "learning_rate")
        assert errors.abs().amax() > 0.1  # with updates off too: what the memory got wrong
        assert torch.equal(recording.memory_stream(layer, "writes"), errors * rate[..., None])
        scale = values[layer].abs().amax()
        assert (recording.memory_stream(layer, "values") - values[layer]).abs().amax() <= 1e-5 * scale
        for name in ("writes", "values"):
            assert torch.equal(loaded.memory_stream(layer, name), recording.memory_stream(layer, name))
        if not updates:  # nothing written: the value is the initial memory's read plus the error
            initial = recording.memory_stream(layer, "initial.memory").double()
            read = torch.einsum("hvk,thk->thv", initial, recording.memory_stream(layer, "keys").double())
            assert torch.allclose(read + errors.double(), values[layer].double(), atol=1e-5 * float(scale))


def test_momentum_keeps_its_values_and_older_files_their_writes(tmp_path):
    """Momentum's errors are taken against the chunk-start memory, which no file keeps: its values are
    stored. Files from before hold the writes and values themselves: they read the same."""
    model = tiny_model("titans")
    tokens = random_tokens(1, 21)[0]
    recording, _ = record(model, tokens)
    for layer, values in traced_values(model, tokens).items():
        assert torch.equal(recording.tensors[streams.memory(layer, "values")], values)
    older = Recording.load(with_stored_writes(recording).save(tmp_path / "older.safetensors"))
    plain, _ = record(tiny_model(), tokens)
    plain_older = Recording.load(with_stored_writes(plain).save(tmp_path / "plain.safetensors"))
    for run, old in ((recording, older), (plain, plain_older)):
        assert streams.memory(0, "errors") not in old.tensors and not old.has_memory_stream(0, "errors")
        for layer, head, t in itertools.product(run.memory_layers, (0, 1), (-1, 0, 20)):
            assert torch.equal(run.memory_matrix(layer, head, t), old.memory_matrix(layer, head, t))
        assert run.per_token().equals(old.per_token())
