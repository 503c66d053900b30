"""MuseTalk-class networks: full-size parameter counts and checkpoint names (on the meta
device, no memory), narrow random-weight builds end to end, strict loading of the released
formats (safetensors, legacy VAE names, whisper's prefixed keys), ONNX parity. No network."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from pipeline.errors import InvalidOption  # noqa: E402
from pipeline.neural import musetalk_net as mt  # noqa: E402
from pipeline.neural import sd_vae, whisper_encoder  # noqa: E402

SMALL_UNET = {"width": 0.05, "groups": 8, "layers_per_block": 1}  # 16/32/64/64 channels

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def full_size() -> dict[str, torch.nn.Module]:
    with torch.device("meta"):  # shapes only: 850 M parameters cost nothing here
        return {"unet": mt.build_unet(None), "vae": mt.build_vae(None, part="both"), "whisper": mt.build_whisper(None)}


def test_full_size_parameter_counts(full_size: dict[str, torch.nn.Module]) -> None:
    # SD 1.5's UNet has 859,520,964 parameters; MuseTalk's differs by 8 input channels
    # (+4 x 320 x 9) and a 384-wide context (16 cross-attentions' to_k/to_v: -9,584,640)
    assert _count(full_size["unet"]) == 859_520_964 + 4 * 320 * 9 - 2 * 384 * (320 * 5 + 640 * 5 + 1280 * 6)
    assert _count(full_size["vae"]) == 83_653_863  # the SD VAE (AutoencoderKL)
    assert _count(full_size["whisper"]) == 8_208_384  # whisper-tiny's encoder, 4 layers of 384
    assert len(full_size["unet"].state_dict()) == 686 and len(full_size["vae"].state_dict()) == 248


def test_full_size_key_names(full_size: dict[str, torch.nn.Module]) -> None:
    unet = {k: tuple(v.shape) for k, v in full_size["unet"].state_dict().items()}
    assert unet["conv_in.weight"] == (320, 8, 3, 3)
    assert unet["time_embedding.linear_1.weight"] == (1280, 320)
    assert unet["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"] == (320, 384)
    assert unet["down_blocks.2.attentions.1.transformer_blocks.0.ff.net.0.proj.weight"] == (10240, 1280)
    assert unet["down_blocks.0.downsamplers.0.conv.weight"] == (320, 320, 3, 3)
    assert "down_blocks.3.downsamplers.0.conv.weight" not in unet
    assert "down_blocks.3.attentions.0.norm.weight" not in unet
    assert unet["mid_block.attentions.0.proj_in.weight"] == (1280, 1280, 1, 1)
    assert unet["up_blocks.0.resnets.0.conv1.weight"] == (1280, 2560, 3, 3)
    assert unet["up_blocks.3.resnets.0.conv_shortcut.weight"] == (320, 640 + 320, 1, 1)
    assert unet["up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_out.0.bias"] == (1280,)
    assert "up_blocks.3.upsamplers.0.conv.weight" not in unet and unet["conv_out.weight"] == (4, 320, 3, 3)
    vae = {k: tuple(v.shape) for k, v in full_size["vae"].state_dict().items()}
    assert vae["encoder.down_blocks.0.downsamplers.0.conv.weight"] == (128, 128, 3, 3)
    assert vae["encoder.conv_out.weight"] == (8, 512, 3, 3) and vae["quant_conv.weight"] == (8, 8, 1, 1)
    assert vae["decoder.up_blocks.3.resnets.0.conv_shortcut.weight"] == (128, 256, 1, 1)
    assert vae["decoder.mid_block.attentions.0.to_q.weight"] == (512, 512)
    wh = {k: tuple(v.shape) for k, v in full_size["whisper"].state_dict().items()}
    assert wh["conv1.weight"] == (384, 80, 3) and wh["embed_positions.weight"] == (1500, 384)
    assert "layers.3.self_attn.k_proj.bias" not in wh and wh["layers.3.fc1.weight"] == (1536, 384)


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    header, blobs, offset = {}, [], 0
    for k, v in tensors.items():
        raw = v.detach().contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_released_formats_load_strict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    # the VAE as sd-vae-ft-mse ships it: safetensors, diffusers-0.4 attention names, config.json
    vae = mt.build_vae(None, part="both", width=0.0625, groups=8)
    legacy = {}
    for k, v in vae.state_dict().items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
            k = k.replace(f"attentions.0.{new}.", f"attentions.0.{old}.")
        legacy[k] = v
    assert "decoder.mid_block.attentions.0.proj_attn.weight" in legacy
    folder = tmp_path / "sd-vae"
    folder.mkdir()
    _write_safetensors(folder / "diffusion_pytorch_model.safetensors", legacy)
    cfg = {**sd_vae.random_config(0.0625, 8), "_class_name": "AutoencoderKL"}
    (folder / "config.json").write_text(json.dumps(cfg))
    dec = mt.build_vae(folder, part="decoder")
    z = torch.randn(1, 4, 8, 8)
    with torch.inference_mode():
        assert torch.allclose(dec(z), sd_vae.VaeDecode(vae)(z))
    # whisper as openai/whisper-tiny ships it: the encoder under model.encoder., a decoder beside it
    wh = mt.build_whisper(None, width=0.25, layers=2)
    state = {f"model.encoder.{k}": v for k, v in wh.state_dict().items()}
    state["model.decoder.embed_tokens.weight"] = torch.zeros(4, 96)
    wfolder = tmp_path / "whisper"
    wfolder.mkdir()
    _write_safetensors(wfolder / "model.safetensors", state)
    (wfolder / "config.json").write_text(json.dumps({"d_model": 96, "encoder_layers": 2, "encoder_ffn_dim": 384}))
    loaded = mt.build_whisper(wfolder)
    x = torch.randn(1, 80, 200)
    with torch.inference_mode():
        assert torch.allclose(loaded(x), wh(x))
    # the UNet as musetalkV15/unet.pth: a torch state dict next to musetalk.json
    unet = mt.build_unet(None, **SMALL_UNET)
    ufolder = tmp_path / "musetalkV15"
    ufolder.mkdir()
    torch.save(unet.state_dict(), ufolder / "unet.pth")
    (ufolder / "musetalk.json").write_text(json.dumps(
        {**mt.UNET_CONFIG, "block_out_channels": [16, 32, 64, 64], "norm_num_groups": 8, "layers_per_block": 1}))
    again = mt.build_unet(ufolder)
    assert set(again.state_dict()) == set(unet.state_dict())
    broken = dict(unet.state_dict())
    broken.pop("conv_out.bias")
    torch.save(broken, ufolder / "unet.pth")
    with pytest.raises(RuntimeError, match="conv_out.bias"):
        mt.build_unet(ufolder)
    with pytest.raises(InvalidOption):
        mt.build_vae(None, part="middle")  # type: ignore[arg-type]


def test_one_step_end_to_end_at_reduced_size() -> None:
    torch.manual_seed(0)
    whisper = mt.build_whisper(None, width=0.25, layers=2)  # d_model 96
    unet = mt.build_unet(None, cross_attention_dim=96, **SMALL_UNET)
    enc = mt.build_vae(None, part="encoder", width=0.0625, groups=8)
    dec = mt.build_vae(None, part="decoder", width=0.0625, groups=8)
    seconds, fps = 1.0, 25
    t = np.arange(int(16000 * seconds)) / 16000.0
    mel = whisper_encoder.log_mel(0.3 * np.sin(2 * np.pi * 220 * t), n_frames=200)
    assert mel.shape == (80, 200) and mel.max() - mel.min() <= 2.0 + 1e-6  # clipped 8 decades below the peak
    with torch.inference_mode():
        states = whisper(torch.from_numpy(mel)[None])[0].numpy()  # 3 states x 100 x 96
    assert states.shape == (3, 100, 96)
    prompts = mt.audio_prompts(states, n_frames=25, fps=fps, audio_seconds=seconds)
    assert prompts.shape == (25, 30, 96)
    # frame 0 has two frames of silence (zeros) before it; frame 2 starts on the first features
    assert np.all(prompts[0, : 4 * 3] == 0) and np.allclose(prompts[2, :3], states[:, 0])
    face = torch.rand(4, 3, 128, 128)
    masked = face.clone()
    masked[:, :, 64:] = 0  # the lower half hidden, as MuseTalk does
    with torch.inference_mode():
        latents = torch.cat([enc(masked), enc(face)], dim=1)
        assert latents.shape == (4, 8, 16, 16)
        out = unet(latents, torch.zeros(1, dtype=torch.int64), torch.from_numpy(prompts[:4]))
        assert out.shape == (4, 4, 16, 16) and torch.isfinite(out).all()
        image = dec(out)
        other = unet(latents, torch.zeros(1, dtype=torch.int64), torch.from_numpy(prompts[10:14]))
    assert image.shape == (4, 3, 128, 128) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert float((other - out).abs().max()) > 1e-5  # the audio tokens steer the result


def test_whisper_features_match_the_published_recipe() -> None:
    fb = whisper_encoder.mel_filters()
    assert fb.shape == (80, 201) and np.all(fb >= 0)
    assert np.all(fb.sum(axis=1) > 0)  # every band sees some bins (Slaney scale, 0-8 kHz)
    peaks = fb.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0) and peaks[-1] > 180
    tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000).astype(np.float32)
    mel = whisper_encoder.log_mel(tone, n_frames=100)
    hz = whisper_encoder._mel_to_hz(np.linspace(0, whisper_encoder._hz_to_mel(np.array(8000.0)), 82))[1:-1]
    assert abs(hz[int(mel[:, 50].argmax())] - 1000) < 60  # the loudest band is the tone's
    assert whisper_encoder.sinusoids(4, 8)[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_onnx_parity_of_the_three_networks(tmp_path: Path) -> None:
    from pipeline.backends.torch_backend import export_onnx

    torch.manual_seed(0)
    nets = {
        "unet": (mt.build_unet(None, **SMALL_UNET), {
            "latents": np.random.default_rng(0).standard_normal((2, 8, 16, 16)).astype(np.float32),
            "timesteps": np.zeros(1, np.int64),
            "audio": np.random.default_rng(1).standard_normal((2, 50, 384)).astype(np.float32)}, ["out"]),
        "vae": (mt.build_vae(None, part="decoder", width=0.0625, groups=8),
                {"latents": np.random.default_rng(2).standard_normal((2, 4, 8, 8)).astype(np.float32)}, ["image"]),
        "whisper": (mt.build_whisper(None, width=0.25, layers=2),
                    {"input_features": np.random.default_rng(3).standard_normal((1, 80, 200)).astype(np.float32)},
                    ["hidden_states"]),
    }  # fmt: skip
    for name, (net, example, outputs) in nets.items():
        path = tmp_path / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(net, example, outputs, path)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        # batch 3 (dynamic), the export was traced at batch 2 / 1
        feeds = {k: np.concatenate([v, v, v])[:3] if v.ndim > 1 else v for k, v in example.items()}
        got = sess.run(outputs, feeds)[0]
        with torch.inference_mode():
            want = net(*[torch.from_numpy(v) for v in feeds.values()]).numpy()
        assert got.shape == want.shape and got.shape[0] == 3, name
        assert np.abs(got - want).max() < 1e-4 * max(1.0, float(np.abs(want).max())), name


# --- the engine ---------------------------------------------------------------------------------


@pytest.fixture()
def narrow_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The three catalog entries shadowed by narrow random-weight builds (128 px face, 96-wide audio)."""
    from pipeline import models

    def spec(name: str, build: str, inputs: dict, outputs: dict, options: dict) -> models.ModelSpec:
        return models.ModelSpec(
            name=name, title=f"{name} (narrow, tests)", kind="test", repo_id="", revision="", files=(),
            code_licence="MIT", weights_licence="MIT", licence_note="", backend="torch",
            build=f"pipeline.neural.musetalk_net:{build}", inputs=inputs, outputs=outputs, options=options)

    specs = [
        spec("musetalk_unet", "build_unet",
             {"latents": "B,8,16,16 float32", "timesteps": "1 int64", "audio": "B,30,96 float32"},
             {"out": "B,4,16,16 float32"}, {**SMALL_UNET, "cross_attention_dim": 96}),
        spec("sd_vae_ft_mse", "build_vae", {"latents": "B,4,16,16 float32"}, {"image": "B,3,128,128 float32"},
             {"part": "decoder", "width": 0.0625, "groups": 8}),
        spec("whisper_tiny", "build_whisper", {"input_features": "B,80,3000 float32"},
             {"hidden_states": "B,3,1500,96 float32"}, {"width": 0.25, "layers": 2}),
    ]
    for s in specs:
        models.register(s)
    monkeypatch.setenv("AVATAR_DEVICE", "cpu")
    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    yield specs
    for s in specs:
        models.release(s.name)
        models.unregister(s.name)


def test_engine_renders_a_photo_with_random_weights(avatar, speech, narrow_models) -> None:
    from pipeline.engines import get_engine
    from pipeline.options import RenderOptions
    from pipeline.render import plan

    engine = get_engine("musetalk")
    assert engine.info.sources == ("photo",)
    opts = RenderOptions(engine="musetalk", size=256, random_weights=True, head_motion=0.0, blinks=False, brows=0.0)
    rig = engine.prepare(avatar, opts)
    assert engine.output_size(rig) == (256, 256) and rig.latents.shape == (8, 16, 16) and rig.geom.size == 128
    tracks = plan(speech, opts)
    frames = list(engine.render(rig, tracks, speech.audio))
    assert len(frames) == tracks.n_frames
    assert all(f.shape == (256, 256, 3) and f.dtype == np.uint8 for f in frames)
    x0, y0, x1, y1 = rig.target.rect
    for f in frames[::9]:
        d = np.abs(f.astype(int) - rig.image.astype(int))
        d[y0:y1, x0:x1] = 0
        assert d.max() == 0  # head motion off: only the lower face changes
    mouths = np.stack([f[y0:y1, x0:x1].astype(float) for f in frames])
    assert float(mouths.std(0).mean()) > 0.05  # the audio tokens change the face frame to frame
    again = engine.prepare(avatar, opts)
    assert again.unet is rig.unet and again.latents is rig.latents  # cached per avatar


def test_engine_without_weights_names_models_pull(avatar, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipeline.engines import get_engine
    from pipeline.errors import ModelMissing
    from pipeline.options import RenderOptions

    monkeypatch.setenv("AVATAR_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelMissing, match="models pull musetalk_unet"):
        get_engine("musetalk").prepare(avatar, RenderOptions(engine="musetalk", size=256))
