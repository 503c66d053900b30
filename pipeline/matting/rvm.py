"""Person matting with Robust Video Matting (MobileNetV3), a recurrent neural matter.

RVM predicts alpha from the frame *and* four ConvGRU hidden states that summarise the clip
so far; that memory is what keeps its edges steady without any smoothing of ours. The
states are the :class:`RvmState` this matter returns: the caller passes it back with the
next frame of the same clip (``None`` starts a clip). Nothing about a clip is kept in the
matter itself, so one instance (one resident network, loaded once through
:func:`pipeline.models.predictor`) serves many clips and threads.

The state starts afresh when the frame size changes (another clip) and when the caller
passes ``None``. The network sees the frame downsampled by ``downsample_ratio`` (coarse
stage) and its deep guided filter refines at full resolution. The ratio follows RVM's
guidance (the coarse stage at ~256-512 px): the long side is brought to 480 px for
head-and-torso shots (``framing="portrait"``: 0.375 at 720p, 0.25 at 1080p, 0.125 at 4K)
and 768 px for full-body shots; frames up to 512 px are not downsampled. A fixed ratio can
be given instead.

The weights are GPL-3.0 (``python launch.py models pull rvm_mobilenetv3``);
``random_weights=True`` builds the same network with random weights (tests, benchmarks:
the same code path and speed, meaningless alpha).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from pipeline.errors import InvalidOption
from pipeline.matting.base import check_frame

log = logging.getLogger(__name__)

MODEL = "rvm_mobilenetv3"  # catalog entry of the torch checkpoint
MODEL_ONNX = "rvm_mobilenetv3_onnx"  # the released ONNX export, same signature
INPUTS = ("src", "r1i", "r2i", "r3i", "r4i", "downsample_ratio")
OUTPUTS = ("fgr", "pha", "r1o", "r2o", "r3o", "r4o")
TARGET_SIDE = {"portrait": 480, "full_body": 768}  # coarse-stage long side (RVM's table)
NO_DOWNSAMPLE_SIDE = 512  # frames up to this long side run at ratio 1
PHOTO_PASSES = 3  # a still is run this many times so the recurrent state settles


def choose_ratio(height: int, width: int, framing: Literal["portrait", "full_body"] = "portrait") -> float:
    """RVM's ``downsample_ratio`` for frames of ``height x width``: 1 up to 512 px, else the
    ratio that brings the long side to 480 px (portrait) or 768 px (full body)."""
    if framing not in TARGET_SIDE:
        raise InvalidOption(f"RVM framing is one of {', '.join(TARGET_SIDE)}; got {framing!r}.")
    long_side = max(height, width)
    if long_side <= NO_DOWNSAMPLE_SIDE:
        return 1.0
    return min(1.0, TARGET_SIDE[framing] / long_side)


@dataclass(frozen=True)
class RvmState:
    """What RVM carries from one frame of a clip to the next."""

    size: tuple[int, int]  # (h, w) of the clip's frames
    ratio: float  # downsample_ratio the states were computed at
    rec: tuple[Any, ...]  # r1 .. r4 (B x C x h x w): numpy, or torch tensors on the device
    frames: int  # frames seen since the state started


def _zero_state() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    z = np.zeros((1, 1, 1, 1), np.float32)  # the released model's convention: broadcast zeros
    return (z, z, z, z)


class RvmMatter:
    """Robust Video Matting behind the :class:`~pipeline.matting.base.Matter` protocol.

    ``backend`` (``"torch"`` / ``"onnx"``), ``device``, ``precision`` go to the predictor
    (defaults: the registry's choice). ``model`` overrides the catalog entry (the ONNX
    export is :data:`MODEL_ONNX`). ``downsample_ratio=None`` chooses it per frame size
    (:func:`choose_ratio` with ``framing``). ``random_weights`` builds the network without
    its checkpoint; ``local_path`` reads the checkpoint from a file instead of the HF cache.
    ``predictor`` injects a ready predictor (tests).
    """

    name = "rvm"

    def __init__(
        self,
        backend: str | None = None,
        device: str | None = None,
        precision: str | None = None,
        random_weights: bool = False,
        local_path: str | None = None,
        downsample_ratio: float | None = None,
        framing: Literal["portrait", "full_body"] = "portrait",
        model: str | None = None,
        predictor: Any = None,
    ) -> None:
        if downsample_ratio is not None and not 0.0 < float(downsample_ratio) <= 1.0:
            raise InvalidOption(f"RVM downsample_ratio is in (0, 1]; got {downsample_ratio}.")
        if framing not in TARGET_SIDE:
            raise InvalidOption(f"RVM framing is one of {', '.join(TARGET_SIDE)}; got {framing!r}.")
        self.downsample_ratio = None if downsample_ratio is None else float(downsample_ratio)
        self.framing = framing
        if predictor is None:
            from pipeline import models

            name = model or (MODEL_ONNX if backend == "onnx" else MODEL)
            predictor = models.predictor(
                name, backend=backend, device=device, precision=precision,
                random_weights=random_weights, local_path=local_path,
            )  # fmt: skip
        self.predictor = predictor  # casts the float32 inputs to the network's precision itself
        # a torch predictor on an accelerator: the frame goes up as uint8 and the recurrent
        # states stay on the device between frames (no round trip through the host)
        self.on_device = hasattr(predictor, "run_tensors") and str(getattr(predictor, "device", "cpu")) != "cpu"

    def ratio_for(self, height: int, width: int) -> float:
        """The downsample ratio used for frames of this size."""
        return self.downsample_ratio or choose_ratio(height, width, self.framing)

    def matte(self, frame_rgb: np.ndarray, state: RvmState | None = None) -> tuple[np.ndarray, RvmState]:
        frame = check_frame(frame_rgb)
        h, w = frame.shape[:2]
        ratio = self.ratio_for(h, w)
        if state is None or state.size != (h, w) or state.ratio != ratio:
            if state is not None:
                log.debug("RVM state reset: %s @ %.3f -> %s @ %.3f", state.size, state.ratio, (h, w), ratio)
            rec, frames = _zero_state(), 0
        else:
            rec, frames = state.rec, state.frames
        pha, rec = self._run(frame, rec, ratio)
        return pha, RvmState(size=(h, w), ratio=ratio, rec=rec, frames=frames + 1)

    def matte_photo(self, image: np.ndarray) -> np.ndarray:
        """Alpha of a still: the frame run :data:`PHOTO_PASSES` times so the recurrent
        state settles on it (RVM's own advice for images)."""
        state = None
        alpha = np.zeros(image.shape[:2], np.float32)
        for _ in range(PHOTO_PASSES):
            alpha, state = self.matte(image, state)
        return alpha

    def _run(self, frame: np.ndarray, rec: tuple[Any, ...], ratio: float) -> tuple[np.ndarray, tuple[Any, ...]]:
        if self.on_device:
            return self._run_tensors(frame, rec, ratio)
        src = np.ascontiguousarray(frame.transpose(2, 0, 1)[None], dtype=np.float32)
        src *= np.float32(1.0 / 255.0)
        feeds = dict(zip(INPUTS, (src, *rec, np.array([ratio], np.float32))))
        out = self.predictor.run(feeds)
        missing = [k for k in OUTPUTS[1:] if k not in out]
        if missing:
            from pipeline.errors import ModelUnavailable

            raise ModelUnavailable(f"The RVM model returned no {', '.join(missing)}; is it an RVM export?")
        pha = np.asarray(out["pha"])[0, 0].astype(np.float32, copy=False)
        alpha = np.clip(pha, 0.0, 1.0)
        new_rec = tuple(np.ascontiguousarray(out[k], dtype=np.float32) for k in OUTPUTS[2:])
        return alpha, new_rec  # type: ignore[return-value]

    def _run_tensors(self, frame: np.ndarray, rec: tuple[Any, ...], ratio: float) -> tuple[np.ndarray, tuple[Any, ...]]:
        """The same step with torch tensors on the predictor's device (states kept there)."""
        import torch

        dev = torch.device(str(self.predictor.device))
        src = torch.from_numpy(frame).to(dev, non_blocking=True).permute(2, 0, 1)[None].float() * (1.0 / 255.0)
        feeds = dict(zip(INPUTS, (src, *rec, torch.tensor([ratio], dtype=torch.float32))))
        out = self.predictor.run_tensors(feeds)
        alpha = out["pha"][0, 0].float().clamp(0.0, 1.0).cpu().numpy()
        return alpha, tuple(out[k] for k in OUTPUTS[2:])
