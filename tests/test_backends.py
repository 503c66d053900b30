"""Torch and ONNX Runtime predictors on a tiny network: parity, batching, caching, release."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import backends, models
from pipeline.errors import InvalidOption
from pipeline.models import ModelFile, ModelSpec


class Tiny(torch.nn.Module):
    """Two named inputs, two named outputs, BatchNorm and an upsample (what real nets use)."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, width, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(width)
        self.down = torch.nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.head = torch.nn.Conv2d(width, 2, 1)
        self.audio = torch.nn.Linear(8, width)

    def forward(self, img: torch.Tensor, vec: torch.Tensor):
        x = torch.relu(self.bn(self.conv(img))) + self.audio(vec)[:, :, None, None]
        y = torch.nn.functional.interpolate(self.down(x), size=img.shape[-2:], mode="bilinear", align_corners=False)
        return torch.sigmoid(self.head(y)), y.mean(dim=(2, 3))


def build_tiny(weights=None, width: int = 4) -> torch.nn.Module:
    """The builder contract: build(weights | None, **options) -> module in eval mode."""
    net = Tiny(width)
    if weights is not None:
        net.load_state_dict(torch.load(weights, map_location="cpu"))
    return net.eval()


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    spec = models.register(ModelSpec(
        name="tiny_net", title="Tiny", kind="test", repo_id="", revision="", files=(ModelFile("tiny.pt", None, None),),
        code_licence="MIT", weights_licence="MIT", licence_note="", backend="torch", build="test_backends:build_tiny",
        inputs={"img": "B,3,H,W float32", "vec": "B,8 float32"},
        outputs={"mask": "B,2,H,W float32", "pooled": "B,4 float32"}, options={"width": 4, "dims": {"H": 24, "W": 32}},
    ))
    yield spec
    models.release()
    models.unregister("tiny_net")


def _inputs(batch: int, h: int = 24, w: int = 32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    return {"img": rng.random((batch, 3, h, w), dtype=np.float32), "vec": rng.random((batch, 8), dtype=np.float32)}


def test_torch_and_onnx_agree_on_random_weights(tiny):
    t = models.predictor("tiny_net", backend="torch", device="cpu", random_weights=True)
    o = models.predictor("tiny_net", backend="onnx", device="cpu", random_weights=True)
    assert isinstance(t, backends.Predictor) and isinstance(o, backends.Predictor)
    assert (t.backend, o.backend, t.device, o.device, t.precision) == ("torch", "onnx", "cpu", "cpu", "fp32")
    assert t.inputs == o.inputs == ("img", "vec") and t.outputs == o.outputs == ("mask", "pooled")
    for batch, size in ((1, (24, 32)), (5, (40, 48))):  # the batch and spatial axes are dynamic in the export
        x = _inputs(batch, *size)
        a, b = t.run(x), o.run(x)
        assert a["mask"].shape == (batch, 2, *size) and a["pooled"].shape == (batch, 4)
        for k in a:
            assert a[k].dtype == b[k].dtype == np.float32
            np.testing.assert_allclose(a[k], b[k], atol=1e-4)
        assert 0.0 < float(a["mask"].min()) and float(a["mask"].max()) < 1.0 and a["mask"].std() > 0


def test_random_weights_are_seeded(tiny):
    x = _inputs(2)
    first = models.predictor("tiny_net", device="cpu", random_weights=True).run(x)["mask"]
    models.release("tiny_net")
    again = models.predictor("tiny_net", device="cpu", random_weights=True).run(x)["mask"]
    np.testing.assert_array_equal(first, again)


def test_a_torch_model_runs_in_onnx_runtime_on_the_cpu_by_default(tiny):
    p = models.predictor("tiny_net", device="cpu", random_weights=True)
    assert p.backend == "onnx"
    assert models.predictor("tiny_net", backend="torch", device="cpu", random_weights=True).backend == "torch"


def test_predictors_are_cached_and_released(tiny):
    a = models.predictor("tiny_net", backend="torch", device="cpu", random_weights=True)
    assert models.predictor("tiny_net", backend="torch", device="cpu", random_weights=True) is a
    o = models.predictor("tiny_net", backend="onnx", device="cpu", random_weights=True)
    assert len(models.resident()) == 2
    export = next((models.paths.data_dir() / "onnx").glob("tiny_net-fp32-*.onnx"))
    stamp = export.stat().st_mtime_ns
    released = models.release("tiny_net")
    assert len(released) == 2 and models.resident() == []
    assert models.predictor("tiny_net", backend="torch", device="cpu", random_weights=True) is not a
    o2 = models.predictor("tiny_net", backend="onnx", device="cpu", random_weights=True)
    assert o2 is not o and export.stat().st_mtime_ns == stamp  # the export is reused, not redone
    assert models.release() and models.release() == []


def test_local_weights_are_loaded(tiny, tmp_path):
    torch.manual_seed(7)
    net = build_tiny()
    with torch.no_grad():
        net.bn.running_mean.fill_(0.3)
    path = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), path)
    x = _inputs(3)
    with torch.inference_mode():
        want = net(torch.from_numpy(x["img"]), torch.from_numpy(x["vec"]))[0].numpy()
    p = models.predictor("tiny_net", device="cpu", local_path=path)
    np.testing.assert_allclose(p.run(x)["mask"], want, atol=1e-6)
    o = models.predictor("tiny_net", backend="onnx", device="cpu", local_path=tmp_path)  # a folder holding it
    np.testing.assert_allclose(o.run(x)["mask"], want, atol=1e-4)
    random = models.predictor("tiny_net", device="cpu", random_weights=True).run(x)["mask"]
    assert np.abs(random - want).max() > 1e-3


def test_torch_predictor_output_forms_and_errors():
    class DictNet(torch.nn.Module):
        def forward(self, a):
            return {"double": a * 2, "neg": -a, "unused": a}

    p = backends.TorchPredictor(DictNet(), ("a",), ("neg", "double"), name="d")
    out = p.run({"a": np.arange(6, dtype=np.float64).reshape(2, 3)})
    assert list(out) == ["neg", "double"] and out["double"].dtype == np.float32
    np.testing.assert_array_equal(out["double"], np.arange(6).reshape(2, 3) * 2)
    with pytest.raises(InvalidOption, match="missing input"):
        p.run({"b": np.zeros(1)})
    single = backends.TorchPredictor(torch.nn.Identity(), ("x",), ("y", "z"))
    with pytest.raises(InvalidOption, match="1 outputs"):
        single.run({"x": np.zeros((1, 2), np.float32)})


def test_channels_last_gives_the_same_outputs():
    """The CUDA layout (channels-last), checked on the CPU: same numbers as the default layout."""
    torch.manual_seed(1)
    net = build_tiny()
    x = _inputs(3)
    plain = backends.TorchPredictor(net, ("img", "vec"), ("mask", "pooled"), channels_last=False).run(x)
    fast = backends.TorchPredictor(net, ("img", "vec"), ("mask", "pooled"), channels_last=True).run(x)
    for k in plain:
        np.testing.assert_allclose(plain[k], fast[k], atol=1e-5)


def test_fp16_onnx_export_is_a_half_graph(tiny):
    """What predictor(backend="onnx", precision="fp16") builds on CUDA, traced here on the CPU."""
    o = models._onnx_predictor(tiny, None, "cpu", "fp16")
    assert o.precision == "fp16" and o._dtypes == {"img": np.float16, "vec": np.float16}
    x = _inputs(2)
    half = o.run(x)["mask"]
    full = models.predictor("tiny_net", backend="onnx", device="cpu", random_weights=True).run(x)["mask"]
    assert half.dtype == np.float32 and 0 < np.abs(half - full).max() < 2e-2  # the same net, in half precision


def test_export_and_ort_from_bytes(tmp_path):
    torch.manual_seed(0)
    net = build_tiny()
    x = _inputs(1)
    path = backends.export_onnx(net, x, ["mask", "pooled"], tmp_path / "tiny.onnx")
    ort = backends.OrtPredictor(path.read_bytes(), device="cpu", name="tiny")
    assert ort.inputs == ("img", "vec") and ort.outputs == ("mask", "pooled")
    x4 = _inputs(4)  # batch dynamic by default
    t = backends.TorchPredictor(net, ("img", "vec"), ("mask", "pooled"))
    np.testing.assert_allclose(ort.run(x4)["pooled"], t.run(x4)["pooled"], atol=1e-4)
    assert not list(tmp_path.glob("*.partial"))


def test_devices_and_precisions_on_a_cpu_machine():
    if backends.cuda_available():
        pytest.skip("this machine has CUDA")
    assert backends.pick_device() == "cpu" and backends.pick_device("auto") == "cpu"
    with pytest.raises(InvalidOption, match="CUDA"):
        backends.pick_device("cuda")
    with pytest.raises(InvalidOption, match="Unknown device"):
        backends.pick_device("tpu")
    with pytest.raises(InvalidOption, match="CUDA only"):
        backends.check_precision("fp16", "cpu")
    with pytest.raises(InvalidOption, match="CUDA only"):
        backends.TorchPredictor(torch.nn.Identity(), ("x",), ("y",), device="cpu", precision="fp16")
