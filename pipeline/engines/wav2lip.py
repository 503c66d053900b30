"""The `wav2lip` engine: a Wav2Lip-class network redraws the lower face from the speech audio.

Prepare once per avatar (:class:`Wav2LipRig`, cached per avatar key and options): the face
crop from the FaceMesh landmarks (:mod:`pipeline.engines.paste`), the network's 6-channel
face input (the crop with its lower half blacked out, and the crop as reference), the paste
target (region, feathered lower-face mask, source detail), the warp engine's eye and head
rigs for blinks and head motion, and the resident predictor (:func:`pipeline.models.predictor`).

Render, per speech part: the part's audio -> Wav2Lip mel windows (one 200 ms window per
frame, :mod:`pipeline.neural.mel`), run in batches (1, 2, 4, ... up to 128 on CUDA, 16 on the
CPU, so the first frame comes at once), the next batch computed while the current one is
pasted back; each generated crop is pasted onto the still with colour matching and detail
transfer, then the tracks' blinks and head motion are applied with the warp engine's eye and
head warps (the network animates the mouth only). The photo's matte, when there is one,
rides along as the fourth channel (the mouth lies inside the person).

Which network: ``AVATAR_WAV2LIP_MODEL`` (a catalog name) when set, else the first of
``wav2lip_256``, ``wav2lip_gan``, ``wav2lip`` whose weights are on this machine. With
``RenderOptions.random_weights`` the network (``wav2lip`` unless forced) is built with random
weights whatever is present: the mouth is noise, the speed is the real one (tests, benches).
``AVATAR_DEVICE`` (auto, cpu, cuda) picks the device.

A presenter clip (:mod:`wav2lip_clip`): every fitted clip frame gets its own crop and new
mouth, as Wav2Lip dubs a video; the presenter's own eyes and head motion stay.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from pipeline.engines import EngineInfo, check_source
from pipeline.engines import paste as P
from pipeline.errors import ModelMissing
from pipeline.options import RenderOptions
from pipeline.types import AudioClip, Avatar, Frame, Tracks

log = logging.getLogger(__name__)

PREFERENCE = ("wav2lip_256", "wav2lip_gan", "wav2lip")  # first present wins
RANDOM_MODEL = "wav2lip"  # the network built for random_weights (unless AVATAR_WAV2LIP_MODEL names another)
MAX_BATCH = {"cuda": 128, "cpu": 16}
CACHE_SIZE = 4  # prepared rigs kept per process


@dataclass
class Wav2LipRig:
    image: np.ndarray  # the still at output size, RGB or RGBA (matte as alpha)
    model: str  # catalog name of the network
    predictor: Any  # pipeline.backends Predictor
    geom: P.FaceGeometry
    face_input: np.ndarray  # (6, S, S) float32
    target: P.PasteTarget
    eyes: list[Any]  # warp.EyeRig
    head: Any  # warp.HeadRig
    batch: int  # largest batch
    colour: P.ColourState = field(default_factory=P.ColourState)
    clip: Any = None  # wav2lip_clip.ClipSource of a clip avatar (None: the photo ``image``)
    face_tensor: Any = None  # face_input on the predictor's device (torch backend)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


def choose_model(random_weights: bool) -> str:
    """The catalog name of the network to run (see the module docstring)."""
    from pipeline import models

    forced = os.environ.get("AVATAR_WAV2LIP_MODEL", "").strip()
    if forced:
        models.spec(forced)  # an unknown name is an InvalidOption listing the known ones
        return forced
    if random_weights:
        return RANDOM_MODEL
    for name in PREFERENCE:
        if _present(name):
            return name
    raise ModelMissing(
        "The wav2lip engine needs Wav2Lip weights, and none are on this machine. "
        + models.missing_message(models.spec("wav2lip_gan"))
        + " (`python launch.py models pull wav2lip` gets the plain one: a little blurrier, a little tighter sync.) "
        "To try the engine without weights, render with --random-weights (the mouth is noise)."
    )


def _present(name: str) -> bool:
    from pipeline import models

    try:
        return models.locate(models.spec(name)) is not None
    except Exception as exc:  # noqa: BLE001 - a broken remembered path: try the next
        log.debug("%s not usable: %s", name, exc)
        return False


def _predictor(name: str, random_weights: bool) -> Any:
    from pipeline import models

    device = os.environ.get("AVATAR_DEVICE", "").strip() or None
    return models.predictor(name, device=device, random_weights=random_weights)


def _net_size(name: str) -> int:
    from pipeline import models

    s = models.spec(name)
    face = s.inputs.get("face", "")
    dims, _ = models.parse_signature(face) if face else ((0, 0, 96, 96), "")
    return int(dims[-1]) if isinstance(dims[-1], int) else int(s.options.get("size", 96))


_cache: "OrderedDict[tuple, Wav2LipRig]" = OrderedDict()
_cache_lock = threading.Lock()


def prepare(avatar: Avatar, opts: RenderOptions) -> Wav2LipRig:
    random_weights = bool(getattr(opts, "random_weights", False))
    name = choose_model(random_weights)
    pred = _predictor(name, random_weights)
    if avatar.kind == "clip":  # per render: the clip's cursor belongs to this session
        from pipeline.engines.wav2lip_clip import prepare_clip_source

        ref, source = prepare_clip_source(avatar, opts)
        rig = _prepare(ref, dataclasses.replace(opts, size=0), name, pred, motion=False)
        rig.clip = source
        return rig
    key = (avatar.key, _digest(avatar), opts.size, name, id(pred))
    with _cache_lock:
        rig = _cache.get(key)
        if rig is not None:
            _cache.move_to_end(key)
            return dataclasses.replace(rig, colour=P.ColourState())  # shared arrays, own colour state
    rig = _prepare(avatar, opts, name, pred)
    with _cache_lock:
        _cache[key] = rig
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return dataclasses.replace(rig, colour=P.ColourState())


def _digest(avatar: Avatar) -> str:
    """A cheap fingerprint of what the rig is made from: a session may hand in the same avatar
    key with a prepared still (background work) or a matte."""
    import hashlib

    h = hashlib.blake2b(digest_size=12)
    h.update(repr(avatar.image.shape).encode())
    h.update(np.ascontiguousarray(avatar.image[::5, ::5]).tobytes())
    if avatar.matte is not None:
        h.update(np.ascontiguousarray(np.asarray(avatar.matte)[::5, ::5]).tobytes())
    return h.hexdigest()


def _prepare(avatar: Avatar, opts: RenderOptions, name: str, pred: Any, motion: bool = True) -> Wav2LipRig:
    from pipeline.engines import warp as W

    image, lm = W.working_image(avatar, opts)
    size = _net_size(name)
    geom = P.face_geometry(lm, size)
    face_input = P.network_face(P.crop(image, geom))
    target = P.paste_target(image, geom)
    eyes, head = [], None
    if motion:  # a photo: blinks and head motion from the tracks (a clip has its own)
        eyes, head = W.prepare_motion(image, lm)
    device = str(getattr(pred, "device", "cpu"))
    batch = MAX_BATCH.get(device, MAX_BATCH["cpu"])
    log.info("wav2lip rig: %s (%d px) on %s, face box %.0f px, batch up to %d", name, size, device,
             geom.scale * size, batch)
    return Wav2LipRig(image, name, pred, geom, face_input, target, eyes, head, batch)


def batches(n: int, largest: int) -> list[tuple[int, int]]:
    """[a, b) frame ranges: 1, 2, 4, ... frames, then ``largest`` at a time (the first frame at once)."""
    out, a, size = [], 0, 1
    while a < n:
        b = min(n, a + size)
        out.append((a, b))
        a, size = b, min(largest, size * 2)
    return out


def generate(rig: Wav2LipRig, mels: np.ndarray, faces: np.ndarray | None = None) -> np.ndarray:
    """(B, S, S, 3) uint8 RGB mouths for a batch of (B, 1, 80, 16) mel windows and (B, 6, S, S)
    face inputs (default: the photo's, repeated)."""
    pred = rig.predictor
    if hasattr(pred, "run_tensors"):  # torch: the photo's face stays on the device, uint8 made there
        return _generate_torch(rig, pred, mels, faces)
    if faces is None:
        faces = np.repeat(rig.face_input[None], len(mels), axis=0)
    out = pred.run({"mel": mels, "face": faces})
    arr = out["out"] if "out" in out else next(iter(out.values()))
    bgr = np.transpose(arr, (0, 2, 3, 1))[..., ::-1]
    return np.clip(bgr * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _generate_torch(rig: Wav2LipRig, pred: Any, mels: np.ndarray, faces: np.ndarray | None) -> np.ndarray:
    import torch

    if faces is None:
        if rig.face_tensor is None:
            dtype = getattr(pred, "dtype", torch.float32)
            rig.face_tensor = torch.from_numpy(rig.face_input[None].copy()).to(device=pred.device, dtype=dtype)
        face = rig.face_tensor.expand(len(mels), -1, -1, -1)
    else:
        face = faces
    out = pred.run_tensors({"mel": mels, "face": face})
    t = out["out"] if "out" in out else next(iter(out.values()))
    u8 = (t.flip(1).permute(0, 2, 3, 1).float() * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)  # BGR -> RGB
    return u8.cpu().numpy()


def render(rig: Wav2LipRig, tracks: Tracks, audio: AudioClip) -> Iterator[Frame]:
    from pipeline.engines import warp as W
    from pipeline.neural.mel import frame_windows

    n = tracks.n_frames
    if n == 0:
        return
    mels = frame_windows(audio, n, tracks.fps)
    if rig.clip is not None:
        yield from _render_clip(rig, mels)
        return
    blink, brow, gaze = tracks.get("blink"), tracks.get("brow"), tracks.get("gaze")
    yaw, pitch, roll = tracks.get("yaw"), tracks.get("pitch"), tracks.get("roll")
    ranges = batches(n, rig.batch)
    with ThreadPoolExecutor(1, thread_name_prefix="wav2lip") as pool:
        pending: Future = pool.submit(generate, rig, mels[ranges[0][0]:ranges[0][1]])
        for k, (a, b) in enumerate(ranges):
            mouths = pending.result()
            if k + 1 < len(ranges):  # the next batch runs while this one is pasted
                a2, b2 = ranges[k + 1]
                pending = pool.submit(generate, rig, mels[a2:b2])
            for j, i in enumerate(range(a, b)):
                out = rig.image.copy()
                P.paste(out, mouths[j], rig.target, rig.colour)
                if blink[i] > 0.01 or brow[i] > 0.01 or abs(gaze[i]) > 0.01:
                    for eye in rig.eyes:
                        W._eye_frame(eye, out, float(blink[i]), float(brow[i]), float(gaze[i]))
                if abs(yaw[i]) + abs(pitch[i]) + abs(roll[i]) > 0.01:
                    W._head_frame(rig.head, out, float(yaw[i]), float(pitch[i]), float(roll[i]))
                yield out


def _clip_batch(rig: Wav2LipRig, mels: np.ndarray, ks: np.ndarray) -> tuple[list, list, np.ndarray]:
    """Decode, crop and run one batch of clip frames (on the worker thread)."""
    from pipeline.engines.wav2lip_clip import frame_inputs

    frames, targets, faces = [], [], []
    for k in ks:
        frame = rig.clip.frame(int(k))
        face, target = frame_inputs(frame, rig.clip.landmarks[int(k)], rig.geom.size)
        frames.append(frame)
        targets.append(target)
        faces.append(face)
    return frames, targets, generate(rig, mels, np.stack(faces))


def _render_clip(rig: Wav2LipRig, mels: np.ndarray) -> Iterator[Frame]:
    order = rig.clip.order(len(mels))
    ranges = batches(len(mels), rig.batch)
    with ThreadPoolExecutor(1, thread_name_prefix="wav2lip-clip") as pool:
        a0, b0 = ranges[0]
        pending: Future = pool.submit(_clip_batch, rig, mels[a0:b0], order[a0:b0])
        for k, (a, b) in enumerate(ranges):
            frames, targets, mouths = pending.result()
            if k + 1 < len(ranges):
                a2, b2 = ranges[k + 1]
                pending = pool.submit(_clip_batch, rig, mels[a2:b2], order[a2:b2])
            for frame, target, mouth in zip(frames, targets, mouths):
                P.paste(frame, mouth, target, rig.colour)
                yield frame


class Wav2LipEngine:
    """Audio-driven lower face from a Wav2Lip-class network (see the module docstring)."""

    info = EngineInfo(
        "wav2lip", sources=("photo", "clip"), carries_matte=True, device="any",
        summary="Wav2Lip network redraws the mouth from the audio (weights: models pull wav2lip_gan; GPU advised)",
    )

    def check(self, opts: RenderOptions) -> None:
        choose_model(bool(opts.random_weights))

    def prepare(self, avatar: Avatar, opts: RenderOptions) -> Wav2LipRig:
        check_source(self, avatar)
        return prepare(avatar, opts)

    def output_size(self, rig: Wav2LipRig) -> tuple[int, int]:
        return rig.size

    def render(self, rig: Wav2LipRig, tracks: Tracks, audio: AudioClip) -> Iterator[Frame]:
        return render(rig, tracks, audio)
