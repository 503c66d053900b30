"""Presenter clips as avatars: prepared once, cached on disk with a manifest of what made them.

    avatar = prepare_clip("presenter.mov", fps=25.0)   # Avatar with .clip set; .image its reference frame

Preparing a clip is one pass over its frames: each frame on screen at ``k / fps`` (the
source's own timestamps, so a variable-frame-rate phone recording is normalised by time,
rotation metadata applied, scaled to at most :data:`~pipeline.media.clip_frames.MAX_SIDE`)
is stored block-coded (``clip.mp4``) and tracked (:mod:`pipeline.face.track`). The result
lives in ``<cache>/clips/<key>/``: ``clip.mp4``, ``track.npz`` (smoothed and raw
landmarks, which frames had the face) and ``manifest.json`` (the source's size, hash and
stream facts, the parameters and model versions, the shot used, the reference frame,
warnings). ``key`` hashes the file's bytes with every parameter, so a change of either
prepares again; a manifest from another version is ignored. The cache folder is
``$AVATAR_STUDIO_CACHE`` (default ``~/.cache/avatar-studio``).

The reference frame (the avatar's ``image``, what previews show and the mouth is drawn
from) is the frame of the shot with the most closed, most frontal mouth.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.face.landmarks import MultiFacePolicy, _box, _refine, mouth_gap_ratio
from pipeline.face.pose import head_pose
from pipeline.face.track import CROP, FaceTracker
from pipeline.face.track_filter import BETA, MIN_CUTOFF
from pipeline.media import file_digest
from pipeline.media.clip_frames import MAX_SIDE, BlockReader, BlockWriter, cfr_frames, probe_clip, stored_size
from pipeline.media.video import VideoReader
from pipeline.types import Avatar, Clip, FaceInfo

log = logging.getLogger(__name__)

CACHE_ENV = "AVATAR_STUDIO_CACHE"
VERSION = 6  # of the prepared clip's layout and method; a change prepares every clip again (6: BT.709 store)
MANIFEST = "manifest.json"


def cache_root() -> Path:
    """Where prepared clips are kept."""
    base = os.environ.get(CACHE_ENV, "").strip()
    return (Path(base) if base else Path.home() / ".cache" / "avatar-studio") / "clips"


def _params(fps: float, multi_face: str) -> dict[str, Any]:
    import mediapipe

    return {
        "version": VERSION, "fps": float(fps), "max_side": MAX_SIDE, "multi_face": multi_face,
        "crop": CROP, "one_euro": {"min_cutoff": MIN_CUTOFF, "beta": BETA}, "mediapipe": mediapipe.__version__,
    }


def manifest_of(clip: Clip) -> dict[str, Any]:
    """The manifest of a prepared clip (next to its ``clip.mp4``)."""
    return json.loads((Path(clip.path).parent / MANIFEST).read_text(encoding="utf-8"))


def open_frames(clip: Clip) -> BlockReader:
    """Random access to a prepared clip's frames: ``reader[first + i]`` is frame ``i``
    (``first`` from the manifest: frames before the shot used are stored too)."""
    return BlockReader(clip.path, int(manifest_of(clip)["stored_frames"]), clip.fps)


def _reference(landmarks: np.ndarray, found: np.ndarray) -> int:
    """The frame whose mouth is closed (or the most closed) with the head nearest its usual pose
    in the clip (the reference's lower face is carried onto every frame: the nearer each one's
    pose, the less it bends), of the frames where the face was detected."""
    frames = np.flatnonzero(found) if found.any() else np.arange(len(landmarks))
    poses = np.array([head_pose(landmarks[i])[:2] for i in frames])  # yaw, pitch
    usual = np.median(poses, axis=0)
    gaps = np.array([mouth_gap_ratio(landmarks[i]) for i in frames])
    off = np.abs(poses - usual) @ np.array([1.0, 0.5])
    score = np.maximum(gaps, 0.008) + 0.002 * off  # lips read closed (< 0.008): then the pose decides
    return int(frames[int(np.argmin(score))])


def _load(folder: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("params") != params or not (folder / "clip.mp4").is_file() or not (folder / "track.npz").is_file():
        return None
    return manifest


def _prepare(path: Path, folder: Path, fps: float, multi_face: MultiFacePolicy, digest: str,
             params: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    info = probe_clip(path)
    size = stored_size(info.size)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    tmp.mkdir(parents=True)
    try:
        tracker = FaceTracker(fps, multi_face)
        turned = info.rotation in (90, 270)
        decoded = (size[1], size[0]) if turned else size  # scaled while converted, before turning upright
        with VideoReader(path, scale_to=decoded) as video, BlockWriter(tmp / "clip.mp4", size, fps) as writer:
            with _Background(writer.write) as store:  # encoding overlaps tracking (two cores)
                for _, image, t in cfr_frames(video, fps, info.rotation, size):
                    store.put(image)
                    if not tracker.add(image, t):
                        break
        track = tracker.finish()
        lm = track.landmarks
        ref = _reference(track.raw, track.found)
        gaps = np.array([mouth_gap_ratio(p) for p in track.raw])
        gaps[~track.found] = 0
        # the reference frame's mouth is drawn from: its landmarks as precise as a photo's
        # (refined, not smoothed: smoothing lags a talking mouth)
        with BlockReader(tmp / "clip.mp4", writer.frames, fps) as frames:
            still = frames[track.start + ref]
        reference = _refine(still, track.raw[ref]).astype(np.float32)
        np.savez_compressed(tmp / "track.npz", landmarks=lm, raw=track.raw, found=track.found, reference=reference,
                            times=track.times)
        notes = list(track.warnings)
        if info.vfr:
            notes.append(f"The clip has a variable frame rate; it is re-timed to a constant {fps:g} fps by timestamp.")
        if size != info.size:
            notes.append(f"The clip is {info.size[0]}×{info.size[1]}; it is used at {size[0]}×{size[1]}.")
        manifest = {
            "tool": "avatar-studio", "params": params,
            "source": {"name": path.name, "path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": digest,
                       "width": info.size[0],
                       "height": info.size[1], "fps": info.fps, "vfr": info.vfr, "duration": info.duration,
                       "frames": info.frames, "rotation": info.rotation, "codec": info.codec,
                       "container": info.container, "audio_codec": info.audio_codec},
            "fps": fps, "width": size[0], "height": size[1], "stored_frames": writer.frames,
            "first": track.start, "frames": track.n_frames, "shot": [track.start / fps, track.end / fps],
            "cuts": [c / fps for c in track.cuts], "found": float(track.found.mean()), "face_width": track.face_width,
            "reference": ref, "widest": int(np.argmax(gaps)), "widest_gap": float(gaps.max()),
            "warnings": notes, "seconds": round(time.perf_counter() - t0, 3),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, folder)
        except OSError:  # prepared meanwhile by another process: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("prepared clip %s in %.2f s (%d frames)", path.name, manifest["seconds"], track.n_frames)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _Background:
    """Calls ``fn(item)`` for each put item on a second thread, in order; errors re-raised on exit."""

    def __init__(self, fn: Callable[[Any], None], depth: int = 8) -> None:
        self.fn = fn
        self.q: "queue.Queue[Any]" = queue.Queue(depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="clip-store", daemon=True)

    def _run(self) -> None:
        while (item := self.q.get()) is not None:
            if self.error is None:
                try:
                    self.fn(item)
                except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
                    self.error = exc

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(item)

    def __enter__(self) -> "_Background":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


def prepare_clip(
    path: str | Path, fps: float = 25.0, multi_face: MultiFacePolicy = "largest", name: str = ""
) -> Avatar:
    """The avatar of a presenter clip at ``fps`` (prepared, or loaded from the cache)."""
    path = Path(path)
    from pipeline.errors import UnsupportedMedia

    if not path.is_file():
        raise UnsupportedMedia(f"The clip '{path}' was not found.")
    digest = file_digest(path)
    params = _params(fps, multi_face)
    key = hashlib.sha256((digest + json.dumps(params, sort_keys=True)).encode()).hexdigest()[:20]
    folder = cache_root() / key
    manifest = _load(folder, params)
    if manifest is None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        manifest = _prepare(path, folder, fps, multi_face, digest, params)
    return avatar_of(folder, manifest, name or path.stem, key)


def avatar_of(folder: Path, manifest: dict[str, Any], name: str, key: str) -> Avatar:
    with np.load(folder / "track.npz") as data:
        landmarks = data["landmarks"].astype(np.float32)
        pts = data["reference"].astype(np.float32)
    clip = Clip(path=str(folder / "clip.mp4"), fps=float(manifest["fps"]), n_frames=int(manifest["frames"]),
                landmarks=landmarks)
    ref = int(manifest["reference"])
    with open_frames(clip) as frames:
        image = frames[int(manifest["first"]) + ref].copy()
    yaw, pitch, roll = head_pose(pts)
    face = FaceInfo(landmarks=pts.copy(), box=_box(pts, image.shape), yaw=yaw, pitch=pitch, roll=roll)
    return Avatar(image=image, face=face, key=f"clip-{key}", name=name, warnings=tuple(manifest["warnings"]), clip=clip)
