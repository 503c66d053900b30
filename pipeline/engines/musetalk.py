"""The `musetalk` engine: MuseTalk 1.5 redraws the lower face in the SD VAE's latent space.

Prepare once per avatar (:class:`MuseTalkRig`, cached per avatar key and options): the face
crop from the FaceMesh landmarks (:mod:`pipeline.engines.paste`, at the UNet's face size:
256 px for 32 x 32 latents), its two latents (the crop with the lower half blacked out, and
the crop as the reference; MuseTalk's 8-channel UNet input), the paste target, the warp
engine's eye and head rigs, and the three resident predictors: whisper-tiny's encoder, the
UNet, the VAE decoder (:func:`pipeline.models.predictor`; the VAE encoder runs once per
avatar).

Render, per speech part: the audio at 16 kHz -> Whisper log-mel per 30 s window -> every
encoder hidden state -> MuseTalk's per-frame audio tokens (2 frames of context each side,
:func:`pipeline.neural.musetalk_net.audio_prompts`) -> in batches (1, 2, 4, ... up to 64 on
CUDA, 8 on the CPU) one UNet step at t = 0 -> VAE decode -> pasted back with the feathered
lower-face mask, colour matching and detail transfer; blinks and head motion by the warp
engine's eye and head warps. The photo's matte rides along as alpha.

Weights: ``python launch.py models pull musetalk_unet`` (and ``sd_vae_ft_mse``,
``whisper_tiny``), all MIT / Apache-2.0. ``RenderOptions.random_weights`` builds all three
with random weights (the face is noise, the speed is the real one). Photo avatars only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from pipeline.engines import EngineInfo, check_source
from pipeline.engines import paste as P
from pipeline.errors import ModelMissing
from pipeline.options import RenderOptions
from pipeline.types import AudioClip, Avatar, Frame, Tracks

log = logging.getLogger(__name__)

UNET, VAE, WHISPER = "musetalk_unet", "sd_vae_ft_mse", "whisper_tiny"  # catalog names
MAX_BATCH = {"cuda": 64, "cpu": 8}
CACHE_SIZE = 4
WINDOW = 30.0  # seconds of audio per whisper pass (Whisper's window, as MuseTalk feeds it)


@dataclass
class MuseTalkRig:
    image: np.ndarray  # the still at output size, RGB or RGBA (matte as alpha)
    unet: Any  # Predictor: latents, timesteps, audio -> out
    vae: Any  # Predictor: latents -> image in [0, 1]
    whisper: Any  # Predictor: input_features -> hidden_states
    geom: P.FaceGeometry
    latents: np.ndarray  # (8, h, w) masked + reference latents of the crop
    target: P.PasteTarget
    eyes: list[Any]
    head: Any
    batch: int
    colour: P.ColourState = field(default_factory=P.ColourState)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def _device() -> str | None:
    return os.environ.get("AVATAR_DEVICE", "").strip() or None


def _check_present(random_weights: bool) -> None:
    from pipeline import models

    if random_weights:
        return
    missing = [n for n in (UNET, VAE, WHISPER) if models.locate(models.spec(n)) is None]
    if missing:
        raise ModelMissing(
            "The musetalk engine needs MuseTalk 1.5's UNet, the SD VAE and whisper-tiny; missing: "
            + ", ".join(missing) + ". " + " ".join(models.missing_message(models.spec(n)) for n in missing)
            + " To try the engine without weights, render with --random-weights (the face is noise).")


def face_size() -> int:
    """The face crop side: 8 x the UNet's latent size (256 px for MuseTalk 1.5)."""
    from pipeline import models

    dims, _ = models.parse_signature(models.spec(UNET).inputs["latents"])
    return 8 * int(dims[-1]) if isinstance(dims[-1], int) else 256


def _encoder(random_weights: bool, device: str | None) -> Any:
    """The VAE's encoder half as a resident predictor (image in [0, 1] -> scaled latents)."""
    from pipeline import models
    from pipeline.backends.base import pick_device

    s = models.spec(VAE)
    weights = None if random_weights else models.locate(s)
    options = {**s.build_options, "part": "encoder"}
    dev = pick_device(device)
    key = f"musetalk-vae-encoder:{s.name}:{dev}:{weights or 'random'}:{sorted(options.items())}"

    def load() -> Any:
        import torch

        from pipeline.backends.torch_backend import TorchPredictor
        from pipeline.neural.musetalk_net import build_vae

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            module = build_vae(weights, **options)
        return TorchPredictor(module, ("image",), ("latents",), device=dev, precision="fp32", name="vae_encoder")

    return models.get(key, load).model


def reference_latents(encoder: Any, face: np.ndarray) -> np.ndarray:
    """(8, h, w): the latents of the crop with its lower half black, then of the crop."""
    x = np.transpose(face.astype(np.float32) * np.float32(1 / 255.0), (2, 0, 1))
    masked = x.copy()
    masked[:, face.shape[0] // 2:] = 0.0
    z = encoder.run({"image": np.stack([masked, x])})["latents"]
    return np.ascontiguousarray(np.concatenate([z[0], z[1]], 0))


_cache: "OrderedDict[tuple, MuseTalkRig]" = OrderedDict()
_lock = threading.Lock()


def prepare(avatar: Avatar, opts: RenderOptions) -> MuseTalkRig:
    from pipeline import models

    random_weights = bool(getattr(opts, "random_weights", False))
    _check_present(random_weights)
    device = _device()
    preds = [models.predictor(n, device=device, random_weights=random_weights) for n in (UNET, VAE, WHISPER)]
    key = (avatar.key, avatar.image.shape, opts.size, avatar.matte is not None, random_weights,
           *(id(p) for p in preds))
    with _lock:
        rig = _cache.get(key)
        if rig is not None:
            _cache.move_to_end(key)
            return _fresh(rig)
    rig = _prepare(avatar, opts, preds, _encoder(random_weights, device))
    with _lock:
        _cache[key] = rig
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return _fresh(rig)


def _fresh(rig: MuseTalkRig) -> MuseTalkRig:
    """The cached rig with its own colour-matching state (one per render)."""
    return MuseTalkRig(rig.image, rig.unet, rig.vae, rig.whisper, rig.geom, rig.latents, rig.target, rig.eyes,
                       rig.head, rig.batch)


def _prepare(avatar: Avatar, opts: RenderOptions, preds: list[Any], encoder: Any) -> MuseTalkRig:
    from pipeline.engines import warp as W

    image, lm = W.working_image(avatar, opts)
    geom = P.face_geometry(lm, face_size())
    latents = reference_latents(encoder, P.crop(image, geom))
    eyes, head = W.prepare_motion(image, lm)
    device = str(getattr(preds[0], "device", "cpu"))
    batch = MAX_BATCH.get(device, MAX_BATCH["cpu"])
    log.info("musetalk rig: %d px face on %s, latents %s, batch up to %d", geom.size, device, latents.shape, batch)
    return MuseTalkRig(image, preds[0], preds[1], preds[2], geom, latents, P.paste_target(image, geom), eyes,
                       head, batch)


def whisper_states(whisper: Any, audio: AudioClip) -> np.ndarray:
    """Every encoder hidden state of the audio, ``S x T x D`` at 50 per second (30 s windows)."""
    from pipeline.media.audio import resample
    from pipeline.neural.whisper_encoder import SAMPLE_RATE, log_mel

    clip = audio if audio.rate == SAMPLE_RATE else resample(audio, SAMPLE_RATE)
    step = int(WINDOW * SAMPLE_RATE)
    parts = []
    for a in range(0, max(1, len(clip.samples)), step):
        mel = log_mel(clip.samples[a: a + step])[None]
        parts.append(whisper.run({"input_features": mel})["hidden_states"][0])
    return np.concatenate(parts, axis=1)


def batches(n: int, largest: int) -> list[tuple[int, int]]:
    """[a, b) frame ranges of 1, 2, 4, ... frames, then ``largest`` (the first frame at once)."""
    out, a, size = [], 0, 1
    while a < n:
        out.append((a, min(n, a + size)))
        a, size = min(n, a + size), min(largest, size * 2)
    return out


def generate(rig: MuseTalkRig, prompts: np.ndarray) -> np.ndarray:
    """(B, S, S, 3) uint8 RGB faces for a batch of (B, 50, 384) audio tokens: one UNet step."""
    latents = np.repeat(rig.latents[None], len(prompts), axis=0)
    pred = rig.unet.run({"latents": latents, "timesteps": np.zeros(1, np.int64), "audio": prompts})["out"]
    image = rig.vae.run({"latents": pred})["image"]
    return np.clip(np.transpose(image, (0, 2, 3, 1)) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render(rig: MuseTalkRig, tracks: Tracks, audio: AudioClip) -> Iterator[Frame]:
    from pipeline.engines import warp as W
    from pipeline.neural.musetalk_net import audio_prompts

    n = tracks.n_frames
    if n == 0:
        return
    prompts = audio_prompts(whisper_states(rig.whisper, audio), n, tracks.fps, audio.duration)
    blink, brow, gaze = tracks.get("blink"), tracks.get("brow"), tracks.get("gaze")
    yaw, pitch, roll = tracks.get("yaw"), tracks.get("pitch"), tracks.get("roll")
    for a, b in batches(n, rig.batch):
        faces = generate(rig, prompts[a:b])
        for j, i in enumerate(range(a, b)):
            out = rig.image.copy()
            P.paste(out, faces[j], rig.target, rig.colour)
            if blink[i] > 0.01 or brow[i] > 0.01 or abs(gaze[i]) > 0.01:
                for eye in rig.eyes:
                    W._eye_frame(eye, out, float(blink[i]), float(brow[i]), float(gaze[i]))
            if abs(yaw[i]) + abs(pitch[i]) + abs(roll[i]) > 0.01:
                W._head_frame(rig.head, out, float(yaw[i]), float(pitch[i]), float(roll[i]))
            yield out


class MuseTalkEngine:
    """Audio-driven lower face from MuseTalk 1.5 (see the module docstring)."""

    info = EngineInfo(
        "musetalk", sources=("photo",), carries_matte=True, device="any",
        summary="MuseTalk 1.5 redraws the lower face in VAE latents from whisper features "
                "(weights: models pull musetalk_unet, sd_vae_ft_mse, whisper_tiny; GPU advised)",
    )

    def check(self, opts: RenderOptions) -> None:
        _check_present(bool(opts.random_weights))

    def prepare(self, avatar: Avatar, opts: RenderOptions) -> MuseTalkRig:
        check_source(self, avatar)
        return prepare(avatar, opts)

    def output_size(self, rig: MuseTalkRig) -> tuple[int, int]:
        return rig.size

    def render(self, rig: MuseTalkRig, tracks: Tracks, audio: AudioClip) -> Iterator[Frame]:
        return render(rig, tracks, audio)
