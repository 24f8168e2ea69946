"""trainer.models (torch) and edge.signal.spectrogram: shapes, budgets, MC-dropout, ONNX export,
and a learning sanity check. No timing is asserted.

The dynamo ONNX export dominates the run time (~20 s on one thread; the legacy exporter
takes ~1 s); the whole file takes ~35 s on 2 cores."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from edge.signal.labels import CLASSES, N_MAG_BINS  # noqa: E402
from edge.signal.spectrogram import spectrogram, spectrogram_shape  # noqa: E402
from trainer.models import (  # noqa: E402
    CBAM1d,
    MaxPool1dExportable,
    MCDropout,
    ModelConfig,
    ProbabilityModel,
    SoftThreshold,
    build_model,
    build_model_from_config,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
    set_mc_dropout,
)

N = 3000
WAVEFORM_MODELS = ("resnet18_cbam", "cnn1d")


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _inputs(batch: int, n: int = N, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, n, generator=g)
    x = x / x.abs().amax(dim=(1, 2), keepdim=True)
    log_peak = -7.0 + 4.0 * torch.rand(batch, 1, generator=g)
    return x, log_peak


def _model(name: str, **kw):
    torch.manual_seed(0)
    return build_model(name, **kw).eval()


# ---------------------------------------------------------------- shapes and budgets


@pytest.mark.parametrize("name", WAVEFORM_MODELS)
@pytest.mark.parametrize("batch", [1, 5])
def test_waveform_output_shapes(name, batch):
    model = _model(name)
    with torch.no_grad():
        c, m = model(*_inputs(batch))
    assert c.shape == (batch, len(CLASSES)) and m.shape == (batch, N_MAG_BINS)
    assert c.dtype == torch.float32 and torch.isfinite(c).all() and torch.isfinite(m).all()
    assert model.features(_inputs(batch)[0]).shape == (batch, model.embedding_dim)


@pytest.mark.parametrize("name", WAVEFORM_MODELS)
def test_batch_one_trains(name):
    # No BatchNorm on (B, features) tensors: a batch of 1 must work in training mode too.
    model = build_model(name).train()
    c, m = model(*_inputs(1))
    (c.sum() + m.sum()).backward()


def test_n_classes_is_a_constructor_argument():
    model = _model("resnet18_cbam", n_classes=2, n_mag_bins=10)
    c, m = model(*_inputs(3))
    assert c.shape == (3, 2) and m.shape == (3, 10)
    assert _model("spectrogram_cnn", n_classes=7)(torch.rand(2, 3, 65, 45)).shape == (2, 7)


def test_parameter_budgets():
    resnet = count_parameters(build_model("resnet18_cbam"))
    cnn = count_parameters(build_model("cnn1d"))
    assert resnet <= 300_000
    assert cnn < 100_000 and cnn < resnet
    assert count_parameters(build_model("spectrogram_cnn")) > 0


def test_resnet_layout_and_time_length():
    model = _model("resnet18_cbam")
    assert [len(s) for s in model.stages] == [2, 2, 2, 2]
    x, lp = _inputs(2)
    # stem stride 4 + pool 2, then three stride-2 stages: 3000 / 8 / 8 = 47 time steps
    assert model.feature_map(x).shape == (2, 64, 47)
    assert model_stride2_len(x) == 94
    # the time length is not fixed
    with torch.no_grad():
        c, m = model(*_inputs(2, n=2000))
    assert c.shape == (2, 4) and m.shape == (2, 30)


def model_stride2_len(x):
    from trainer.models.resnet_cbam import ResNet18CBAM1d
    return ResNet18CBAM1d(stem_stride=2).eval().feature_map(x).shape[-1]


def test_scalar_features():
    model = _model("resnet18_cbam", n_scalar_features=3)
    x, lp = _inputs(2)
    c, _ = model(x, lp, torch.zeros(2, 3))
    assert c.shape == (2, 4)
    with pytest.raises(ValueError):
        model(x, lp)


def test_log_peak_reaches_the_heads():
    model = _model("resnet18_cbam")
    x, _ = _inputs(2)
    with torch.no_grad():
        a = model(x, torch.full((2, 1), -7.0))[1]
        b = model(x, torch.full((2, 1), -3.0))[1]
    assert not torch.allclose(a, b)


def test_pretrain_head():
    model = _model("resnet18_cbam", n_attributes=12)
    x, _ = _inputs(4)
    assert model.predict_attributes(x).shape == (4, 12)
    assert model.pretrain_head.n_attributes == 12
    with pytest.raises(RuntimeError):
        _model("cnn1d").predict_attributes(x)
    assert _model("cnn1d", n_attributes=5).predict_attributes(x).shape == (4, 5)


@pytest.mark.parametrize("name", WAVEFORM_MODELS)
def test_last_conv_grad_cam_hook(name):
    model = _model(name)
    store = {}

    def hook(_module, _inp, out):
        out.retain_grad()
        store["map"] = out

    handle = model.last_conv.register_forward_hook(hook)
    x, lp = _inputs(2)
    c, _ = model(x, lp)
    c[:, 0].sum().backward()
    handle.remove()
    fmap = store["map"]
    assert fmap.shape[:2] == (2, model.embedding_dim) and fmap.grad is not None
    cam = F.relu((fmap.grad.mean(-1, keepdim=True) * fmap).sum(1))
    assert cam.shape == (2, fmap.shape[-1])
    torch.testing.assert_close(fmap.detach().mean(-1), model.features(x))


# ---------------------------------------------------------------- layers


def test_mc_dropout_module():
    d = MCDropout(0.5)
    x = torch.ones(4, 1000)
    d.eval()
    assert torch.equal(d(x), x)
    d.mc = True
    y = d(x)
    assert set(torch.unique(y).tolist()) <= {0.0, 2.0}
    assert 0.4 < (y == 0).float().mean().item() < 0.6
    d.mc = False
    d.train()
    assert not torch.equal(d(x), x)
    # explicit noise replaces rand_like
    noise = torch.rand(4, 1000)
    torch.testing.assert_close(d(x, noise), x * (noise >= 0.5) * 2.0)
    assert torch.equal(MCDropout(0.0).train()(x), x)
    with pytest.raises(ValueError):
        MCDropout(1.0)


@pytest.mark.parametrize("name", WAVEFORM_MODELS)
def test_eval_deterministic_and_mc_switch(name):
    model = _model(name)
    x, lp = _inputs(3)
    with torch.no_grad():
        a = model(x, lp)
        b = model(x, lp)
        assert all(torch.equal(u, v) for u, v in zip(a, b))
        assert set_mc_dropout(model, True) == 3
        assert not model.training  # BatchNorm stays in eval mode
        c = model(x, lp)
        d = model(x, lp)
        assert not torch.allclose(c[0], d[0]) and not torch.allclose(c[1], d[1])
        set_mc_dropout(model, False)
        e = model(x, lp)
        assert all(torch.equal(u, v) for u, v in zip(a, e))


def test_mc_dropout_noise_input():
    model = _model("resnet18_cbam")
    set_mc_dropout(model, True)
    x, lp = _inputs(2)
    noise = torch.rand(2, model.noise_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = model(x, lp, noise=noise)
        b = model(x, lp, noise=noise)
        c = model(x, lp, noise=torch.rand(2, model.noise_dim))
        set_mc_dropout(model, False)
        off = model(x, lp)
        ignored = model(x, lp, noise=noise)  # inactive dropout ignores the noise
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.allclose(a[0], c[0])
    assert all(torch.equal(u, v) for u, v in zip(off, ignored))


def test_spectrogram_cnn_mc_dropout():
    model = _model("spectrogram_cnn")
    spec = torch.rand(2, 3, 65, 45)
    with torch.no_grad():
        assert torch.equal(model(spec), model(spec))
        set_mc_dropout(model, True)
        assert not torch.allclose(model(spec), model(spec))


def test_soft_threshold_zeroes_small_and_shrinks_large():
    torch.manual_seed(0)
    layer = SoftThreshold(8)
    x = torch.randn(3, 8, 200) * torch.linspace(0.1, 3.0, 8).view(1, 8, 1)
    with torch.no_grad():
        tau = layer.threshold(x)
        y = layer(x)
    assert tau.shape == (3, 8, 1)
    assert (tau > 0).all() and (tau <= x.abs().mean(-1, keepdim=True)).all()
    small = x.abs() <= tau
    assert small.any() and (~small).any()
    assert (y[small] == 0).all()
    tau_b = tau.expand_as(x)
    torch.testing.assert_close(y[~small], x[~small] - torch.sign(x[~small]) * tau_b[~small])
    # the sign never flips and magnitudes only shrink
    assert ((y * x) >= 0).all() and (y.abs() <= x.abs()).all()


def test_cbam_shapes_and_range():
    torch.manual_seed(0)
    cbam = CBAM1d(16, reduction=4)
    x = torch.randn(2, 16, 300)
    assert cbam(x).shape == x.shape
    cw, tw = cbam.channel_weights(x), cbam.temporal_weights(x)
    assert cw.shape == (2, 16) and tw.shape == (2, 1, 300)
    assert ((cw > 0) & (cw < 1)).all() and ((tw > 0) & (tw < 1)).all()


def test_exportable_maxpool_matches_max_pool1d():
    x = torch.randn(2, 4, 101)
    for k, s, p in [(3, 2, 1), (4, 4, 0), (2, 2, 0)]:
        torch.testing.assert_close(MaxPool1dExportable(k, s, p)(x), F.max_pool1d(x, k, s, p))


# ---------------------------------------------------------------- config / checkpoints


@pytest.mark.parametrize("name", ["resnet18_cbam", "cnn1d", "spectrogram_cnn"])
def test_config_roundtrip_and_checkpoint(name, tmp_path):
    kw = {"dropout": 0.1} if name == "spectrogram_cnn" else {"n_attributes": 4, "widths": (8, 16, 24, 32)}
    if name == "cnn1d":
        kw["pools"] = (4, 4, 4, 2)
    model = _model(name, **kw)
    d = json.loads(json.dumps(model.config.to_dict()))
    assert d["name"] == name
    cfg = ModelConfig.from_dict(d)
    assert cfg == model.config
    again = build_model_from_config(cfg)
    assert count_parameters(again) == count_parameters(model)
    again.load_state_dict(model.state_dict())  # strict: identical architecture
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, epoch=3)
    loaded, ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 3 and not loaded.training
    inp = (torch.rand(2, 3, 65, 45),) if name == "spectrogram_cnn" else _inputs(2)
    with torch.no_grad():
        a, b = model(*inp), loaded(*inp)
    a, b = (a,) if torch.is_tensor(a) else a, (b,) if torch.is_tensor(b) else b
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_config_errors():
    with pytest.raises(ValueError):
        build_model("resnet50")
    with pytest.raises(ValueError):
        ModelConfig(name="cnn1d", options={"no_such_arg": 1}).model_kwargs()
    with pytest.raises(ValueError):
        ModelConfig(name="spectrogram_cnn", n_attributes=3).model_kwargs()
    with pytest.raises(ValueError):
        ModelConfig.from_dict({"name": "cnn1d", "colour": "red"})


# ---------------------------------------------------------------- spectrogram (numpy side)


def _chirp_window(f_hz: float, n: int = N, fs: float = 250.0) -> np.ndarray:
    t = np.arange(n) / fs
    rng = np.random.default_rng(0)
    x = np.stack([np.sin(2 * np.pi * f_hz * t + ph) for ph in (0.0, 1.0, 2.0)])
    x = x + 0.01 * rng.standard_normal(x.shape)
    return x / np.abs(x).max()


def test_spectrogram_contract():
    x = _chirp_window(40.0)
    s = spectrogram(x, 250.0)
    assert s.shape == (3,) + spectrogram_shape(N, 250.0) == (3, 65, 45)
    assert s.dtype == np.float32 and s.min() >= 0.0 and s.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(s, spectrogram(x.copy(), 250.0))  # deterministic
    # 40 Hz with 250/128 Hz bins -> row 20 or 21
    assert s[0].mean(axis=1).argmax() in (20, 21)
    # batch form == per-example
    x2 = _chirp_window(10.0)
    np.testing.assert_array_equal(spectrogram(np.stack([x, x2]))[1], spectrogram(x2))
    # a dead horizontal is all zeros; an all-zero window too
    x[2] = 0.0
    assert (spectrogram(x)[2] == 0).all()
    assert (spectrogram(np.zeros((3, N))) == 0).all()
    with pytest.raises(ValueError):
        spectrogram(np.zeros((3, 100)))


def test_spectrogram_cnn_on_edge_spectrogram():
    model = _model("spectrogram_cnn")
    spec = torch.from_numpy(spectrogram(np.stack([_chirp_window(5.0), _chirp_window(40.0)])))
    with torch.no_grad():
        out = model(spec)
    assert out.shape == (2, 4)  # class logits only: no magnitude head
    one = _model("spectrogram_cnn", input_shape=(1, 65, 45))
    assert one(spec[:, :1]).shape == (2, 4)


# ---------------------------------------------------------------- ONNX export


def _ort_session(path, **kw):
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"], **kw)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore:.*axis name:UserWarning")
def test_onnx_export_dynamo_fp32_matches_torch(tmp_path):
    """Production path: dynamo exporter (opset 20), one file, dynamic batch from a batch-2
    example, probabilities for both heads, MC off."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    model = _model("resnet18_cbam")
    wrapped = ProbabilityModel(model).eval()
    path = tmp_path / "resnet.onnx"
    batch = torch.export.Dim("batch")
    torch.onnx.export(
        wrapped, _inputs(2), str(path), dynamo=True, external_data=False,
        input_names=["x", "log_peak"], output_names=["class_probs", "mag_probs"],
        dynamic_shapes=({0: batch}, {0: batch}),
    )
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    assert "RandomUniformLike" not in ops
    assert [i.name for i in graph.input] == ["x", "log_peak"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, N]  # symbolic batch only
    sess = _ort_session(path)
    for b in (1, 5):
        x, lp = _inputs(b, seed=b)
        probs, mags = sess.run(None, {"x": x.numpy(), "log_peak": lp.numpy()})
        with torch.no_grad():
            tp, tm = wrapped(x, lp)
        assert probs.shape == (b, 4) and mags.shape == (b, 30)
        np.testing.assert_allclose(probs, tp.numpy(), atol=1e-4)
        np.testing.assert_allclose(mags, tm.numpy(), atol=1e-4)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_mc_dropout_stays_random(tmp_path):
    """MC on at export -> RandomUniformLike in the graph, and onnxruntime's default graph
    optimisation keeps it (an explicit mask, not a Dropout node). Uses the legacy exporter
    only for speed (~1 s vs ~10-20 s); the dynamo exporter gives the same op."""
    onnx = pytest.importorskip("onnx")
    model = _model("resnet18_cbam")
    set_mc_dropout(model, True)
    wrapped = ProbabilityModel(model).eval()
    path = tmp_path / "resnet_mc.onnx"
    torch.onnx.export(
        wrapped, _inputs(2), str(path), dynamo=False, opset_version=17,
        input_names=["x", "log_peak"], output_names=["class_probs", "mag_probs"],
        dynamic_axes={k: {0: "batch"} for k in ("x", "log_peak", "class_probs", "mag_probs")},
    )
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("RandomUniformLike") == 3 and "Dropout" not in ops
    x, lp = _inputs(3)
    feeds = {"x": x.numpy(), "log_peak": lp.numpy()}
    sess = _ort_session(path)  # default optimisation level (ORT_ENABLE_ALL)
    a, b = sess.run(None, feeds), sess.run(None, feeds)
    assert not np.allclose(a[0], b[0]) and not np.allclose(a[1], b[1])
    np.testing.assert_allclose(a[0].sum(1), 1.0, atol=1e-5)


# ---------------------------------------------------------------- learning sanity check


def test_resnet_overfits_small_fixed_set():
    """16 fixed examples, 2 classes told apart by frequency (4 Hz vs 30 Hz) in noise."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    n = 16
    t = torch.arange(N) / 250.0
    y = torch.arange(n) % 2
    f = torch.where(y == 0, 4.0, 30.0)
    phase = 2 * math.pi * torch.rand(n, 3, 1, generator=g)
    env = torch.exp(-(((t - 4.0) / 2.0) ** 2))
    x = torch.sin(2 * math.pi * f.view(n, 1, 1) * t + phase) * env + 0.3 * torch.randn(n, 3, N, generator=g)
    x = x / x.abs().amax(dim=(1, 2), keepdim=True)
    lp = torch.full((n, 1), -5.0)
    model = build_model("resnet18_cbam", n_classes=2).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        logits, _ = model(x, lp)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if loss.item() < 0.02:
            break
    assert losses[-1] < 0.1 * losses[0], losses
    assert (logits.argmax(1) == y).all()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_with_noise_input_is_deterministic(tmp_path):
    """The TFLite-style graph: MC-dropout noise as a third input instead of rand_like. Also
    checks the trap that the legacy exporter re-applies the *wrapper's* training flag after
    export: ProbabilityModel takes the wrapped model's mode, so the model stays in eval."""
    onnx = pytest.importorskip("onnx")
    model = _model("resnet18_cbam")
    set_mc_dropout(model, True)
    wrapped = ProbabilityModel(model)
    assert not wrapped.training
    x, lp = _inputs(2)
    noise = torch.rand(2, model.noise_dim, generator=torch.Generator().manual_seed(5))
    path = tmp_path / "resnet_noise.onnx"
    torch.onnx.export(
        wrapped, (x, lp, noise), str(path), dynamo=False, opset_version=17,
        input_names=["x", "log_peak", "noise"], output_names=["class_probs", "mag_probs"],
        dynamic_axes={k: {0: "batch"} for k in ("x", "log_peak", "noise", "class_probs", "mag_probs")},
    )
    assert not model.training and not wrapped.training
    assert "RandomUniformLike" not in {n.op_type for n in onnx.load(str(path)).graph.node}
    sess = _ort_session(path)
    feeds = {"x": x.numpy(), "log_peak": lp.numpy(), "noise": noise.numpy()}
    out = sess.run(None, feeds)
    with torch.no_grad():
        ref = wrapped(x, lp, noise)
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o, r.numpy(), atol=1e-4)
    np.testing.assert_array_equal(out[0], sess.run(None, feeds)[0])


def test_soft_threshold_training_form_equals_the_export_form():
    """SoftThreshold trains with sign(x) * relu(|x| - tau) (cheaper backward) and exports as
    x - clamp(x, -tau, tau): same values and same gradients."""
    import torch

    from trainer.models.layers import SoftThreshold

    torch.manual_seed(0)
    layer = SoftThreshold(16)
    x = torch.randn(4, 16, 200)
    grads = []
    for training in (True, False):
        layer.train(training)
        xi = x.clone().requires_grad_()
        y = layer(xi)
        (y * torch.linspace(-1, 1, 200)).sum().backward()
        grads.append((y.detach(), xi.grad.clone(), [p.grad.clone() for p in layer.parameters()]))
        layer.zero_grad()
    (y1, gx1, gp1), (y2, gx2, gp2) = grads
    assert torch.allclose(y1, y2) and torch.allclose(gx1, gx2)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(gp1, gp2))
    assert float((y1 == 0).float().mean()) > 0.05  # the threshold does zero some samples
