"""Robust Video Matting: the network (random weights, checkpoint layout, ONNX parity) and
the recurrent matter. No network, no GPU: small frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from pipeline.errors import InvalidOption  # noqa: E402
from pipeline.matting import create_matter  # noqa: E402
from pipeline.matting.base import MATTERS, Matter  # noqa: E402
from pipeline.matting.rvm import RvmMatter, RvmState, choose_ratio  # noqa: E402
from pipeline.neural import rvm_net  # noqa: E402

INPUTS = ["src", "r1i", "r2i", "r3i", "r4i", "downsample_ratio"]
OUTPUTS = ["fgr", "pha", "r1o", "r2o", "r3o", "r4o"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    module = rvm_net.build(None)
    with torch.no_grad():  # random weights give alpha < 0 (clamped to 0) almost everywhere: lift it
        module.project_mat.conv.bias[3] += 0.5
    return module


def _predictor(module: torch.nn.Module):
    """The torch backend behind the predictor interface (what models.predictor returns)."""
    try:
        from pipeline.backends.torch_backend import TorchPredictor
    except ImportError:  # the backends not landed: the same contract, inline
        class TorchPredictor:  # type: ignore[no-redef]
            def __init__(self, m, inputs, outputs, **_):
                self.m, self.inputs, self.outputs, self.precision = m, inputs, outputs, "fp32"

            def run(self, feeds):
                with torch.inference_mode():
                    out = self.m(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.inputs])
                return {n: t.numpy() for n, t in zip(self.outputs, out)}

    return TorchPredictor(module, INPUTS, OUTPUTS, device="cpu", precision="fp32", name="rvm")


def _frame(h: int, w: int, seed: int) -> np.ndarray:
    """A person-ish test frame: a bright ellipse on a gradient, with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255.0 / w, yy * 255.0 / h, np.full((h, w), 90.0)], -1)
    inside = ((yy - 0.55 * h) / (0.4 * h)) ** 2 + ((xx - 0.5 * w) / (0.25 * w)) ** 2 < 1
    img[inside] = (220, 180, 150)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


# --- the network ---------------------------------------------------------------------------


def test_parameter_count_and_checkpoint_names(net: torch.nn.Module) -> None:
    # the paper's 3.749 M parameters for the MobileNetV3 variant
    assert sum(p.numel() for p in net.parameters()) == 3_748_633
    keys = set(net.state_dict())
    assert len(keys) == 380  # parameters + BatchNorm statistics, as saved by the released model
    for k in (
        "backbone.features.0.0.weight",  # stem conv of torchvision's MobileNetV3
        "backbone.features.0.1.running_var",
        "backbone.features.1.block.0.0.weight",  # first block: no expansion, depthwise first
        "backbone.features.4.block.2.fc1.weight",  # squeeze-excite after the depthwise conv
        "backbone.features.15.block.3.1.num_batches_tracked",
        "backbone.features.16.0.weight",  # last 1x1 conv to 960 channels
        "aspp.aspp1.0.weight", "aspp.aspp2.1.weight",
        "decoder.decode4.gru.ih.0.weight", "decoder.decode3.conv.0.weight", "decoder.decode1.gru.hh.0.bias",
        "decoder.decode0.conv.3.weight", "decoder.decode0.conv.4.running_mean",
        "project_mat.conv.weight", "project_seg.conv.bias",
        "refiner.box_filter.weight", "refiner.conv.6.bias",
    ):
        assert k in keys, k
    assert not any(k.startswith("backbone.classifier") or k.endswith(".mean") for k in keys)
    sd = net.state_dict()
    assert tuple(sd["backbone.features.4.block.2.fc1.weight"].shape) == (24, 72, 1, 1)  # make_divisible(72 // 4)
    assert tuple(sd["backbone.features.13.block.1.0.weight"].shape) == (672, 1, 5, 5)  # depthwise, dilated stage
    assert tuple(sd["decoder.decode3.conv.0.weight"].shape) == (80, 128 + 40 + 3, 3, 3)


def test_checkpoint_round_trip_is_strict(net: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "rvm_mobilenetv3.pth"
    torch.save(net.state_dict(), path)
    loaded = rvm_net.build(path)
    x = torch.rand(1, 3, 64, 80)
    with torch.inference_mode():
        a, b = net(x, downsample_ratio=0.5), loaded(x, downsample_ratio=0.5)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    broken = {k: v for k, v in net.state_dict().items() if not k.startswith("project_seg")}
    torch.save(broken, path)
    with pytest.raises(RuntimeError, match="project_seg"):
        rvm_net.build(path)
    with pytest.raises(InvalidOption):
        rvm_net.build(None, variant="resnet50")


@pytest.mark.parametrize("h,w,ratio", [(96, 128, 0.5), (75, 101, 0.4), (40, 56, 1.0)])
def test_outputs_and_state_shapes(net: torch.nn.Module, h: int, w: int, ratio: float) -> None:
    x = torch.rand(1, 3, h, w)
    z = torch.zeros(1, 1, 1, 1)
    with torch.inference_mode():
        fgr, pha, *rec = net(x, z, z, z, z, torch.tensor([ratio]))
    assert tuple(fgr.shape) == (1, 3, h, w) and tuple(pha.shape) == (1, 1, h, w)
    assert [tuple(r.shape) for r in rec] == rvm_net.state_shapes(h, w, ratio)
    assert 0.0 <= float(pha.min()) and float(pha.max()) <= 1.0
    # broadcast zeros start a clip exactly like no state at all
    with torch.inference_mode():
        fgr2, pha2, *_ = net(x, downsample_ratio=ratio)
    assert torch.allclose(pha, pha2, atol=1e-6)


def test_onnx_export_matches_torch(net: torch.nn.Module, tmp_path: Path) -> None:
    example = rvm_net.example(batch=1, height=64, width=96, downsample_ratio=0.5)
    axes = {n: {0: "B", 2: "H", 3: "W"} for n in ("src", "fgr", "pha", "r1o", "r2o", "r3o", "r4o")}
    axes.update({f"r{i}i": {0: "N", 1: f"C{i}", 2: f"H{i}", 3: f"W{i}"} for i in range(1, 5)})
    path = tmp_path / "rvm.onnx"
    try:
        from pipeline.backends.torch_backend import export_onnx
    except ImportError:
        export_onnx = None
    if export_onnx is not None:
        export_onnx(net, example, OUTPUTS, path, dynamic_axes=axes)
    else:
        args = tuple(torch.from_numpy(a) for a in example.values())
        torch.onnx.export(net, args, str(path), input_names=INPUTS, output_names=OUTPUTS, dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # another size and ratio than the export's: both stay runtime inputs
    h, w, ratio = 75, 101, 0.4
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    trec = [torch.zeros(1, 1, 1, 1)] * 4
    for seed in (1, 2):
        src = np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)
        feeds = dict(zip(INPUTS, [src, *rec, np.array([ratio], np.float32)]))
        got = sess.run(OUTPUTS, feeds)
        with torch.inference_mode():
            want = [t.numpy() for t in net(torch.from_numpy(src), *trec, downsample_ratio=ratio)]
        for name, g, t in zip(OUTPUTS, got, want):
            assert g.shape == t.shape, name
            assert np.abs(g - t).max() < 1e-4, name
        rec, trec = got[2:], [torch.from_numpy(t) for t in want[2:]]


# --- the matter ----------------------------------------------------------------------------


def test_ratio_follows_rvm_guidance() -> None:
    assert choose_ratio(1080, 1920) == 0.25
    assert choose_ratio(720, 1280) == 0.375
    assert choose_ratio(2160, 3840) == 0.125
    assert choose_ratio(1920, 1080) == 0.25  # portrait video: the long side counts
    assert choose_ratio(512, 512) == 1.0 and choose_ratio(300, 200) == 1.0
    assert choose_ratio(1080, 1920, "full_body") == 0.4
    assert 256 <= 1000 * choose_ratio(1000, 700) <= 512
    with pytest.raises(InvalidOption):
        choose_ratio(100, 100, "wide")  # type: ignore[arg-type]


def test_matter_carries_recurrent_state(net: torch.nn.Module) -> None:
    matter = RvmMatter(predictor=_predictor(net), downsample_ratio=0.5)
    assert isinstance(matter, Matter) and MATTERS["rvm"] == "pipeline.matting.rvm:RvmMatter"
    a, b = _frame(72, 96, 1), _frame(72, 96, 2)
    alpha_a, s1 = matter.matte(a)
    assert alpha_a.shape == (72, 96) and alpha_a.dtype == np.float32
    assert 0.0 <= alpha_a.min() and alpha_a.max() <= 1.0
    assert isinstance(s1, RvmState) and s1.frames == 1 and s1.size == (72, 96) and s1.ratio == 0.5
    assert [r.shape for r in s1.rec] == rvm_net.state_shapes(72, 96, 0.5)
    alpha_b_after_a, s2 = matter.matte(b, s1)
    alpha_b_fresh, _ = matter.matte(b, None)
    assert s2.frames == 2
    # the second frame's alpha depends on the first (the memory), not on hidden matter state
    assert 0.0 < alpha_b_fresh.mean() < 1.0
    assert np.abs(alpha_b_after_a - alpha_b_fresh).max() > 1e-4
    again, _ = matter.matte(b, s1)
    assert np.array_equal(again, alpha_b_after_a)
    assert not any(np.shares_memory(r, q) for r, q in zip(s1.rec, s2.rec))


def test_device_path_keeps_tensors_and_matches_the_numpy_path(net: torch.nn.Module) -> None:
    pred = _predictor(net)
    if not hasattr(pred, "run_tensors"):
        pytest.skip("the torch backend has no run_tensors")
    host = RvmMatter(predictor=pred, downsample_ratio=0.5)
    dev = RvmMatter(predictor=pred, downsample_ratio=0.5)
    assert not host.on_device  # a CPU predictor goes through numpy
    dev.on_device = True  # what a CUDA predictor gets: exercised here on the CPU
    s_host = s_dev = None
    for seed in (1, 2, 3):
        a_host, s_host = host.matte(_frame(72, 96, seed), s_host)
        a_dev, s_dev = dev.matte(_frame(72, 96, seed), s_dev)
        assert isinstance(a_dev, np.ndarray) and a_dev.shape == (72, 96)
        assert np.abs(a_host - a_dev).max() < 1e-5
    assert all(isinstance(r, torch.Tensor) for r in s_dev.rec)
    assert s_dev.frames == 3


def test_matter_resets_on_a_new_size(net: torch.nn.Module) -> None:
    matter = RvmMatter(predictor=_predictor(net))  # ratio chosen per size: 1 for small frames
    _, s1 = matter.matte(_frame(72, 96, 1))
    alpha, s2 = matter.matte(_frame(64, 64, 3), s1)
    fresh, _ = matter.matte(_frame(64, 64, 3), None)
    assert s2.frames == 1 and s2.size == (64, 64)
    assert np.array_equal(alpha, fresh)
    still = matter.matte_photo(_frame(64, 64, 3))
    assert still.shape == (64, 64) and np.isfinite(still).all()
    with pytest.raises(InvalidOption):
        RvmMatter(predictor=_predictor(net), downsample_ratio=1.5)


def test_rvm_through_the_registry_on_both_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import models

    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))  # the ONNX export goes there
    try:
        models.release("rvm_mobilenetv3")
        models.release("rvm_mobilenetv3_onnx")
        alphas = {}
        for backend in ("torch", "onnx"):
            matter = create_matter("rvm", backend=backend, device="cpu", random_weights=True, downsample_ratio=0.5)
            assert matter.predictor.backend == backend
            a1, state = matter.matte(_frame(48, 64, 4))
            a2, state2 = matter.matte(_frame(48, 64, 5), state)
            assert a1.shape == a2.shape == (48, 64) and state2.frames == 2
            assert [r.shape for r in state2.rec] == rvm_net.state_shapes(48, 64, 0.5)
            alphas[backend] = (a1, a2, state2.rec)
        # the same seeded random network: torch and its ONNX export agree frame after frame
        for t, o in zip(alphas["torch"][2], alphas["onnx"][2]):
            assert np.abs(t - o).max() < 1e-4
        assert np.abs(alphas["torch"][1] - alphas["onnx"][1]).max() < 1e-4
    finally:
        models.release("rvm_mobilenetv3")
        models.release("rvm_mobilenetv3_onnx")


def test_a_render_session_mattes_frames_with_rvm(avatar, speech, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """BackgroundOptions.matting selects the matter of the frames an engine returns as RGB."""
    import dataclasses

    from pipeline import engines, models
    from pipeline.engines.warp import WarpEngine
    from pipeline.options import BackgroundOptions, RenderOptions
    from pipeline.render import RenderSession

    class RgbWarp(WarpEngine):  # the warp engine, but its frames come back without the matte
        info = dataclasses.replace(WarpEngine.info, name="rgb_warp_test", carries_matte=False)

    monkeypatch.setitem(engines.REGISTRY, "rgb_warp_test", f"{__name__}:_RgbWarp")
    monkeypatch.setitem(globals(), "_RgbWarp", RgbWarp)
    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(engines, "_instances", {})
    with pytest.raises(InvalidOption):
        BackgroundOptions(mode="color", matting="nope")  # type: ignore[arg-type]
    opts = RenderOptions(engine="rgb_warp_test", size=128, random_weights=True)
    session = RenderSession(avatar, speech, opts, BackgroundOptions(mode="color", matting="rvm"))
    try:
        assert isinstance(session.matter, RvmMatter)
        frames = []
        for frame in session.frames():
            frames.append(frame)
            if len(frames) == 2:
                break
        assert all(f.shape[:2] == (128, 128) for f in frames)
    finally:
        session.close()
        models.release("rvm_mobilenetv3")
    plain = RenderSession(avatar, speech, opts, BackgroundOptions(mode="color"))
    try:
        assert plain.matter is not None and plain.matter.name == "selfie"
    finally:
        plain.close()


def test_rvm_without_weights_names_models_pull(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from pipeline.errors import ModelMissing

    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelMissing, match="models pull rvm_mobilenetv3"):
        create_matter("rvm", device="cpu")
