"""Face and voice sources made ready for a render: Avatar and Speech, with per-process caches.

- :func:`prepare_avatar`: a photo (path, bytes, array, PIL image) -> :class:`Avatar`;
  an empty source is the bundled sample photo.
- :func:`synthesize`: text -> Speech through the voice catalogue; the last results are
  kept so a re-render of the same text and voice repeats exactly (Piper samples noise).
- :func:`load_speech`: a recording -> Speech (timing strategy: ``pipeline.speech.recording``).
- :func:`person_matte`, :func:`resized_avatar`: per-photo work that background renders need.
- :func:`resolve`: the Avatar and Speech a :class:`~pipeline.request.RenderRequest` names.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Generic, Hashable, TypeVar

import numpy as np

from pipeline.options import VoiceOptions
from pipeline.types import Avatar, Speech

V = TypeVar("V")


class Memo(Generic[V]):
    """A small thread-safe LRU of results, computed outside the lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: "OrderedDict[Hashable, V]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def has(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_SPEECH: Memo[Speech] = Memo(32)
_MATTES: Memo[np.ndarray] = Memo(8)
_AVATARS: Memo[Avatar] = Memo(8)  # photos given by path, keyed by path, size and mtime


def sample_photo() -> Path:
    """The bundled sample avatar photo (public domain), used when no face is given."""
    from pipeline.face.samples import sample_avatar_path

    return sample_avatar_path()


def prepare_avatar(source: Any = None, *, name: str = "", multi_face: str = "largest", fps: float = 25.0) -> Avatar:
    """Load a face image (path, bytes, array or PIL image; None or "" = the bundled sample)
    and find the face in it. A video file (by its suffix) is a presenter clip, prepared at
    ``fps`` and cached on disk (:func:`pipeline.face.clip.prepare_clip`)."""
    if source is None or (isinstance(source, (str, Path)) and not str(source)):
        source = sample_photo()
    if isinstance(source, (str, Path)):  # the same file again (a Live preview, the sample): found once
        try:
            st = Path(source).stat()
        except OSError:
            st = None  # load_image says what is wrong
        if st is not None:
            key = (str(Path(source).resolve()), st.st_size, st.st_mtime_ns, name, multi_face, fps)
            return _AVATARS.get(key, lambda: _prepare(source, name, multi_face, fps))
    return _prepare(source, name, multi_face, fps)


def _prepare(source: Any, name: str, multi_face: str, fps: float = 25.0) -> Avatar:
    from pipeline.errors import UnsupportedMedia
    from pipeline.face.landmarks import find_face
    from pipeline.media.clip_frames import is_video_path
    from pipeline.media.image import image_key, load_image

    if not name:
        name = Path(source).stem if isinstance(source, (str, Path)) else "avatar"
    if is_video_path(source):
        from pipeline.face.clip import prepare_clip

        return prepare_clip(source, fps, multi_face=multi_face, name=name)  # type: ignore[arg-type]
    try:
        image = load_image(source)
    except UnsupportedMedia:
        from pipeline.media.clip_frames import looks_like_video

        if isinstance(source, (str, Path)) and looks_like_video(source):  # a clip named without its suffix
            from pipeline.face.clip import prepare_clip

            return prepare_clip(source, fps, multi_face=multi_face, name=name)  # type: ignore[arg-type]
        raise
    face = find_face(image, policy=multi_face)  # type: ignore[arg-type]
    warnings = list(face.notes)
    if face.faces_found > 1:
        warnings.insert(0, f"{face.faces_found} faces found; animating the best one (large, frontal, clearly a face).")
    return Avatar(image=image, face=face, key=image_key(image), name=name, warnings=tuple(warnings))


def synthesize(text: str, opts: VoiceOptions = VoiceOptions()) -> Speech:
    """Text to speech with phoneme timing, offline, with the voice ``opts.voice``
    (see :func:`pipeline.speech.voices.synthesize`)."""
    from pipeline.speech import voices

    return _SPEECH.get((text, opts), lambda: voices.synthesize(text, opts))


def speech_cached(text: str, opts: VoiceOptions = VoiceOptions()) -> bool:
    """Whether :func:`synthesize` has this script in this voice already (say, from a preview)."""
    return _SPEECH.has((text, opts))


def load_speech(path: str | Path, *, text: str = "", timing: str = "auto", language: str = "en") -> Speech:
    """Recorded or uploaded audio, decoded and loudness-normalised, with phoneme times
    (timing modes: :func:`pipeline.speech.recording.load_speech`)."""
    from pipeline.speech import recording

    return recording.load_speech(path, text=text, timing=timing, language=language)


def person_matte(avatar: Avatar) -> np.ndarray:
    """The person matte of an avatar's photo (computed once per photo and kept)."""
    from pipeline.matting import matte_photo

    return _MATTES.get(avatar.key, lambda: matte_photo(avatar.image))


def resized_avatar(avatar: Avatar, longest: int) -> Avatar:
    """The avatar scaled so its longest side is ``longest`` px (landmarks and matte too)."""
    import cv2

    from pipeline.media.image import resize_to

    if not longest or max(avatar.image.shape[:2]) == longest:
        return avatar
    image, scale = resize_to(avatar.image, longest)
    lm = avatar.face.landmarks.copy()
    lm[:, :3] *= scale
    box = tuple(int(round(v * scale)) for v in avatar.face.box)
    face = dataclasses.replace(avatar.face, landmarks=lm, box=box)  # type: ignore[arg-type]
    matte = None
    if avatar.matte is not None:
        matte = cv2.resize(avatar.matte, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    return dataclasses.replace(avatar, image=image, face=face, matte=matte, key=f"{avatar.key}@{longest}")


def speech_for(request: Any) -> Speech:
    """The Speech a request's voice source names (TTS or a timed recording)."""
    v = request.voice
    if v.kind == "text":
        return synthesize(v.text, v.voice)
    return load_speech(v.audio, text=v.transcript, timing=v.timing, language=v.language)


def resolve(request: Any) -> tuple[Avatar, Speech]:
    """The Avatar and Speech a validated :class:`~pipeline.request.RenderRequest` names.

    The face is found on a second thread while the speech is made (MediaPipe and the TTS /
    timing runtimes release the GIL), so the two overlap on two cores."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="face") as pool:
        face = pool.submit(prepare_avatar, request.face.path or None, multi_face=request.face.multi_face,
                           fps=request.render.fps)
        speech = speech_for(request)
        return face.result(), speech
