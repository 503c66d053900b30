"""Avatar Studio pipeline: the facade that the UI, CLI, API and batch runner call.

    avatar = prepare_avatar("face.jpg")
    speech = synthesize("Hello!")            # or load_speech("voice.m4a")
    result = render_to_file(avatar, speech, "out.mp4")

Nothing here imports gradio; heavy modules are imported on first use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from pipeline.errors import PipelineError
from pipeline.options import BackgroundOptions, ExportOptions, RenderOptions, VoiceOptions
from pipeline.types import Avatar, Frame, Speech, Tracks

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
_CACHE_LOCK = threading.Lock()


def _no_progress(fraction: float, message: str) -> None:
    pass


def prepare_avatar(source, *, name: str = "avatar", multi_face: str = "largest") -> Avatar:
    """Load a face image (path, bytes, array or PIL image) and find the face in it."""
    from pipeline.face.landmarks import find_face
    from pipeline.media.image import image_key, load_image

    image = load_image(source)
    face = find_face(image, policy=multi_face)  # type: ignore[arg-type]
    warnings = []
    if face.faces_found > 1:
        warnings.append(f"{face.faces_found} faces found; animating the largest one.")
    return Avatar(image=image, face=face, key=image_key(image), name=name, warnings=tuple(warnings))


_SPEECH_CACHE: "OrderedDict[tuple, Speech]" = OrderedDict()
_SPEECH_CACHE_SIZE = 32


def synthesize(text: str, opts: VoiceOptions = VoiceOptions()) -> Speech:
    """Text to speech with phoneme timing, offline, with the voice ``opts.voice``.

    Voices (``pipeline.speech.voices``): the bundled Piper voice (default), espeak-ng for
    100+ languages (``espeak:de``), downloaded Piper voices or a local ``.onnx`` file; an
    unknown voice raises ModelUnavailable saying how to find one. The script may hold
    pauses: ``[pause 500ms]``, ``[pause 1.2s]`` or ``[pause]`` (0.5 s). Long scripts are
    spoken sentence chunk by chunk, so memory stays bounded.

    Piper samples noise, so two syntheses of one text differ slightly; the last few
    results are kept per process so the same text and voice give the same speech (and
    the same frames) on a re-render.
    """
    from pipeline.speech import voices

    key = (text, opts)
    with _CACHE_LOCK:
        hit = _SPEECH_CACHE.get(key)
        if hit is not None:
            _SPEECH_CACHE.move_to_end(key)
            return hit
    speech = voices.synthesize(text, opts)
    with _CACHE_LOCK:
        _SPEECH_CACHE[key] = speech
        while len(_SPEECH_CACHE) > _SPEECH_CACHE_SIZE:
            _SPEECH_CACHE.popitem(last=False)
    return speech


def voices(language: str = ""):
    """The voice catalogue (``presets/voices.toml``): every voice, or those for one language
    (BCP-47 tag; a bare "en" gives every English region). Best offline choices first."""
    from pipeline.speech import voices as catalogue

    return list(catalogue.catalogue()) if not language else catalogue.voices_for(language)


def voice_languages() -> list[tuple[str, str]]:
    """(BCP-47 tag, name) of every language some voice speaks, sorted by name."""
    from pipeline.speech import voices as catalogue

    return catalogue.languages()


def download_voice(voice: str) -> None:
    """Download a Piper voice into the model cache (only when asked; needs the network)."""
    from pipeline.speech import voices as catalogue

    catalogue.download_piper_voice(voice)


def load_speech(path: str | Path, *, text: str = "", timing: str = "auto", language: str = "en") -> Speech:
    """Recorded or uploaded audio, decoded and loudness-normalised, with phoneme times
    (see :func:`pipeline.speech.recording.load_speech` for the timing modes)."""
    from pipeline.speech import recording

    return recording.load_speech(path, text=text, timing=timing, language=language)


def plan(speech: Speech, opts: RenderOptions = RenderOptions()) -> Tracks:
    """All per-frame controls for a render: mouth poses plus blinks."""
    from pipeline.motion import blink_track, gaze_track, head_tracks
    from pipeline.visemes import build_mouth_tracks

    tracks = build_mouth_tracks(speech, opts.fps, opts.mouth_scale)
    if opts.blinks:
        tracks.set("blink", blink_track(tracks.n_frames, opts.fps, opts.seed, speech.phonemes))
    for name, values in head_tracks(
        tracks.n_frames, opts.fps, opts.seed, opts.head_motion, opts.brows, speech.phonemes
    ).items():
        tracks.set(name, values)
    if opts.smile:
        tracks.set("smile", np.full(tracks.n_frames, opts.smile, np.float32))
    if opts.gaze:
        tracks.set("gaze", gaze_track(tracks.n_frames, opts.fps, opts.seed, opts.gaze))
    return tracks


@dataclass
class Prepared:
    """An avatar made ready for one engine and option set (reusable across renders)."""

    engine: str
    data: object
    size: tuple[int, int]


def prepare_engine(avatar: Avatar, opts: RenderOptions = RenderOptions()) -> Prepared:
    from pipeline.engines import get_engine

    engine = get_engine(opts.engine)
    data = engine.prepare(avatar, opts)
    return Prepared(opts.engine, data, engine.output_size(data))


def render(
    avatar: Avatar | Prepared, speech: Speech, opts: RenderOptions = RenderOptions(), tracks: Tracks | None = None
) -> Iterator[Frame]:
    """Stream the frames of ``avatar`` saying ``speech`` (the first frame comes at once)."""
    from pipeline.engines import get_engine

    prepared = avatar if isinstance(avatar, Prepared) else prepare_engine(avatar, opts)
    tracks = tracks if tracks is not None else plan(speech, opts)
    return get_engine(prepared.engine).render(prepared.data, tracks)


@dataclass
class RenderResult:
    path: Path
    frames: int
    fps: float
    duration: float  # seconds of audio (and video)
    seconds: float  # wall-clock time of the render
    size: tuple[int, int]

    @property
    def speed(self) -> float:
        """Output frames per second of wall-clock time."""
        return self.frames / max(self.seconds, 1e-9)


_MATTES: "OrderedDict[str, np.ndarray]" = OrderedDict()


def person_matte(avatar: Avatar) -> np.ndarray:
    """The person matte of an avatar's photo (computed once per photo and kept)."""
    from pipeline.matting import matte_photo

    with _CACHE_LOCK:
        hit = _MATTES.get(avatar.key)
    if hit is not None:
        return hit
    alpha = matte_photo(avatar.image)
    with _CACHE_LOCK:
        _MATTES[avatar.key] = alpha
        while len(_MATTES) > 8:
            _MATTES.popitem(last=False)
    return alpha


def resized_avatar(avatar: Avatar, longest: int) -> Avatar:
    """The avatar scaled so its longest side is ``longest`` px (landmarks and matte too)."""
    import dataclasses

    import cv2

    from pipeline.media.image import resize_to

    if not longest or max(avatar.image.shape[:2]) == longest:
        return avatar
    image, scale = resize_to(avatar.image, longest)
    lm = avatar.face.landmarks.copy()
    lm[:, :3] *= scale
    x0, y0, x1, y1 = avatar.face.box
    box = tuple(int(round(v * scale)) for v in (x0, y0, x1, y1))
    face = dataclasses.replace(avatar.face, landmarks=lm, box=box)  # type: ignore[arg-type]
    matte = None
    if avatar.matte is not None:
        matte = cv2.resize(avatar.matte, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    return dataclasses.replace(avatar, image=image, face=face, matte=matte, key=f"{avatar.key}@{longest}")


def render_to_file(
    avatar: Avatar,
    speech: Speech,
    out: str | Path,
    opts: RenderOptions = RenderOptions(),
    export_opts: ExportOptions = ExportOptions(),
    progress: Progress = _no_progress,
    background: BackgroundOptions = BackgroundOptions(),
) -> RenderResult:
    """Render and encode to ``out`` (written atomically); reports progress.

    With a ``background`` other than "keep" at the source framing, the photo's person
    matte is computed once and carried through the warps as a fourth channel, the photo
    is colour-treated once for the new background, and each frame is composited only
    where it changed.
    """
    import dataclasses

    from pipeline.errors import InvalidOption
    from pipeline.export import open_writer
    from pipeline.export.threaded import ThreadedWriter
    from pipeline.options import ALPHA_FORMATS

    t0 = time.perf_counter()
    progress(0.0, "Preparing the avatar")
    composite = background.mode != "keep" or background.framing != "source" or background.resolution != "source"
    if background.mode == "transparent" and export_opts.format not in ALPHA_FORMATS:
        raise InvalidOption(
            f"A transparent background needs an export format with alpha ({', '.join(ALPHA_FORMATS)}), "
            f"not {export_opts.format}."
        )
    compositor = None
    if composite:
        from pipeline.matting import Compositor

        avatar = resized_avatar(avatar, opts.size)
        opts = dataclasses.replace(opts, size=0)
        progress(0.01, "Separating the person from the background")
        alpha = person_matte(avatar) if avatar.matte is None else avatar.matte
        compositor = Compositor(background, avatar.size, opts.fps)
        still_rgb = compositor.prepare_still(avatar.image, alpha)
        avatar = dataclasses.replace(avatar, image=still_rgb, matte=alpha)
    prepared = prepare_engine(avatar, opts)
    tracks = plan(speech, opts)
    n = tracks.n_frames
    if n == 0:
        raise PipelineError(f"The speech is {speech.duration:.3f} s long: too short for one frame at {opts.fps:g} fps.")
    w, h = compositor.out_size if compositor is not None else prepared.size
    progress(0.02, "Rendering")
    step = max(1, n // 50)
    try:
        writer_opened = open_writer(Path(out), w, h, opts.fps, speech.audio, export_opts, title=avatar.name, speech=speech)
        with ThreadedWriter(writer_opened) as writer:
            for i, frame in enumerate(render(prepared, speech, opts, tracks)):
                if compositor is not None:
                    frame = compositor.apply(frame, None, i)
                writer.write(frame)
                if i % step == 0:
                    progress(0.02 + 0.95 * (i + 1) / n, f"Frame {i + 1} of {n}")
            progress(0.98, "Finishing the file")
    finally:
        if compositor is not None:
            compositor.close()
    seconds = time.perf_counter() - t0
    progress(1.0, "Done")
    return RenderResult(Path(out), n, opts.fps, speech.duration, seconds, (w, h))


def expression_presets() -> dict[str, dict]:
    """Named expression presets (presets/expressions.toml): RenderOptions values."""
    from pipeline import presets

    return presets.load("expressions")


def still(avatar: Avatar) -> np.ndarray:
    """The source image with the detected landmarks drawn on it (for previews)."""
    import cv2

    img = avatar.image.copy()
    r = max(1, int(round(avatar.face.width / 160)))
    for x, y in avatar.face.xy.astype(int):
        cv2.circle(img, (int(x), int(y)), r, (80, 255, 120), -1, cv2.LINE_AA)
    x0, y0, x1, y1 = avatar.face.box
    cv2.rectangle(img, (x0, y0), (x1, y1), (255, 200, 0), max(1, r), cv2.LINE_AA)
    return img


__all__ = [
    "BackgroundOptions",
    "person_matte",
    "resized_avatar",
    "ExportOptions",
    "PipelineError",
    "Prepared",
    "RenderOptions",
    "RenderResult",
    "expression_presets",
    "VoiceOptions",
    "load_speech",
    "plan",
    "prepare_avatar",
    "prepare_engine",
    "render",
    "render_to_file",
    "still",
    "synthesize",
    "voice_languages",
    "voices",
    "download_voice",
]
