"""The mic-driven live avatar: microphone audio in, the avatar's frames out, as it speaks.

    offer = offer_session(avatar, owner=session_hash)   # holds a live slot (LIMITER)
    session = claim(offer.token)                         # the transport's connection takes it over
    for frame in session.feed(pcm_16k, arrived=time.perf_counter()):
        send(frame.header() + frame.data)                # JPEG of the changed part of the frame
    session.close()                                      # frees the slot (also on cancel)

Per frame the warp engine renders directly on the prepared avatar (no file, no chunk
encoder): the mouth comes from :class:`pipeline.visemes.streaming.StreamingVisemes`
(audio only, at most 50 ms of look-ahead), blinks from the same generator a file render
uses. A frame is sent as a JPEG of the rectangle that changed since the previous frame
(a keyframe, the whole picture, at the start and every ``keyframe_s``), so a talking
head costs ~5-10 KB a frame instead of ~50 KB.

Latency is measured per frame from the arrival on the server of the audio block that holds
the frame's own time to the moment the frame is handed to the connection; it is kept per
session (:class:`MicStats`) and exported to Prometheus (:data:`LATENCY`).

Sessions are keyed by an unguessable token made for one browser tab, so two tabs never
share state; an offer that nobody claims within :data:`OFFER_TTL_S` gives its slot back.
"""

from __future__ import annotations

import logging
import secrets
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from pipeline import timing
from pipeline.errors import PipelineError
from pipeline.live import LIMITER, Slot
from pipeline.render import CancelToken
from pipeline.types import MOUTH_CHANNELS, Avatar, Tracks

log = logging.getLogger(__name__)

SR = 16000  # the rate the page sends (mono int16)
OFFER_TTL_S = 30.0  # an offer not claimed by a connection within this long is dropped
STATS_WINDOW_S = 2.0  # latency and fps are reported over this much recent time
LATE_S = 0.2  # a frame whose audio arrived this long ago is skipped when a newer one is ready


class SessionNotFound(PipelineError):
    """A connection named a mic session that does not exist (expired, or already taken)."""

    code = "live_session_not_found"


@dataclass(frozen=True)
class MicOptions:
    """How a mic session renders."""

    fps: float = 25.0  # frames per second sent to the page
    size: int = 512  # longest side of the frames, px (0: the photo's own size, capped at 1024)
    jpeg_quality: int = 80  # 1-100
    keyframe_s: float = 2.0  # a whole frame at least this often (the rest are changed rectangles)
    blinks: bool = True  # eye blinks every few seconds
    mouth_scale: float = 1.0  # how far the mouth opens (1 = as estimated)
    seed: int = 0  # blink timing


# ---------------------------------------------------------------------------- metrics

try:  # Prometheus metrics on the default registry (served by the API's /metrics)
    from prometheus_client import Counter, Gauge, Histogram

    LATENCY = Histogram(
        "avatar_studio_live_mic_latency_seconds",
        "Mic avatar: audio arriving on the server to its frame leaving the pipeline",
        buckets=(0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 1.0),
    )
    FRAMES = Counter("avatar_studio_live_mic_frames", "Mic avatar frames sent")
    SESSIONS = Gauge("avatar_studio_live_mic_sessions", "Mic avatar sessions running")
except ImportError:  # pragma: no cover - prometheus_client is in requirements.txt
    LATENCY = FRAMES = SESSIONS = None


# ---------------------------------------------------------------------------- frames


HEADER = struct.Struct("<BBHHHIfd")  # kind, 0, x, y, 0, index, latency ms, client time of the audio


@dataclass
class MicFrame:
    """One frame for the page: a JPEG of the rectangle at (x, y) that changed (``key``: the
    whole frame; empty ``data``: nothing changed)."""

    index: int
    data: bytes
    x: int
    y: int
    key: bool
    arrived: float  # perf_counter() when the audio holding this frame's time arrived
    client_time: float  # the page's clock stamp of that audio block (ms), echoed back
    latency: float = 0.0  # seconds, set when the frame leaves (see MicSession.sent)
    image: np.ndarray | None = field(default=None, repr=False)  # the whole rendered frame (not sent)
    rect: tuple[int, int, int, int] = (0, 0, 0, 0)  # x0, y0, x1, y1 of what ``data`` covers

    def header(self) -> bytes:
        return HEADER.pack(0 if self.key else 1, 0, self.x, self.y, 0, self.index, self.latency * 1000.0,
                           self.client_time)


@dataclass
class MicStats:
    """Latency and frame rate over the last :data:`STATS_WINDOW_S` seconds."""

    sent: deque = field(default_factory=deque)  # (time sent, latency s)
    frames: int = 0

    def add(self, now: float, latency: float) -> None:
        self.sent.append((now, latency))
        self.frames += 1
        while self.sent and self.sent[0][0] < now - STATS_WINDOW_S:
            self.sent.popleft()

    def summary(self, now: float | None = None) -> dict[str, float]:
        now = time.perf_counter() if now is None else now
        recent = [lat for t, lat in self.sent if t >= now - STATS_WINDOW_S]
        if not recent:
            return {"latency_ms": 0.0, "latency_p95_ms": 0.0, "fps": 0.0, "frames": self.frames}
        span = max(now - self.sent[0][0], 1e-3) if len(self.sent) > 1 else STATS_WINDOW_S
        return {
            "latency_ms": round(1000 * float(np.median(recent)), 1),
            "latency_p95_ms": round(1000 * float(np.percentile(recent, 95)), 1),
            "fps": round(min(len(recent), len(recent) / min(span, STATS_WINDOW_S)), 1),
            "frames": self.frames,
        }


class MicSession:
    """One microphone-driven avatar (see the module docstring)."""

    def __init__(self, avatar: Avatar, opts: MicOptions = MicOptions(), *, slot: Slot | None = None,
                 token: str = "") -> None:
        import cv2  # noqa: F401  (fail here, not per frame)

        from pipeline.engines import get_engine
        from pipeline.options import RenderOptions
        from pipeline.sources import resized_avatar
        from pipeline.visemes.streaming import StreamingVisemes

        self.opts = opts
        self.token = token
        self.slot = slot
        self.cancel = CancelToken()
        self.engine = get_engine("warp")
        longest = opts.size or min(1024, max(avatar.image.shape[:2]))
        avatar = resized_avatar(avatar, longest)
        self.rig = self.engine.prepare(avatar, RenderOptions(size=0, fps=opts.fps))
        self.size = self.engine.output_size(self.rig)
        self.visemes = StreamingVisemes(opts.fps, mouth_scale=opts.mouth_scale)
        self.fps = float(timing.fps_fraction(opts.fps))
        self.blinks = self._blink_cycle()
        self.stats = MicStats()
        self.skipped = 0  # frames not rendered because the machine fell behind (see feed_blocks)
        self._arrivals: deque[tuple[int, float, float]] = deque()  # (end sample, arrived, client time)
        self._samples = 0
        self._last: np.ndarray | None = None
        self._last_key = -(10**9)
        self._closed = False
        self.on_close: list = []  # called (no arguments) once the session is closed, e.g. to end its connection
        self.started = time.perf_counter()
        if SESSIONS is not None:
            SESSIONS.inc()

    def _blink_cycle(self) -> np.ndarray:
        n = int(round(60 * self.fps))
        if not self.opts.blinks:
            return np.zeros(n, np.float32)
        from pipeline.motion import blink_track

        return blink_track(n, self.opts.fps, self.opts.seed)

    # ------------------------------------------------------------------ audio in, frames out

    def feed(self, pcm: np.ndarray, arrived: float, client_time: float = 0.0) -> list[MicFrame]:
        """Add 16 kHz mono samples (float32 in [-1, 1], or int16) that arrived at ``arrived``
        (``time.perf_counter()``); return the frames that became ready, rendered."""
        return self.feed_blocks([(pcm, arrived, client_time)])

    def feed_blocks(self, blocks: list[tuple[np.ndarray, float, float]]) -> list[MicFrame]:
        """:meth:`feed` for several blocks at once (what queued up while the last ones were
        rendered). Every block goes through the viseme estimator; a frame whose audio is
        already :data:`LATE_S` old when its turn comes is skipped when a newer one is ready
        (counted in ``skipped``), so a stalled machine catches up instead of lagging on."""
        poses: list[tuple[int, np.ndarray]] = []
        for pcm, arrived, client_time in blocks:
            self.cancel.check()
            x = np.asarray(pcm)
            if x.dtype == np.int16:
                x = x.astype(np.float32) / 32768.0
            self._samples += len(x)
            self._arrivals.append((self._samples, arrived, client_time))
            new = self.visemes.push(x)
            first = self.visemes.frames_out - len(new)
            poses += [(first + i, pose) for i, pose in enumerate(new)]
        out = []
        for j, (k, pose) in enumerate(poses):
            self.cancel.check()
            arrived, client_time = self._arrival(k)
            if j < len(poses) - 1 and time.perf_counter() - arrived > LATE_S:
                self.skipped += 1
                continue
            frame = self._frame(k, pose)
            frame.arrived, frame.client_time = arrived, client_time
            out.append(frame)
        return out

    def _arrival(self, frame: int) -> tuple[float, float]:
        """When the audio block holding frame ``frame``'s start arrived (and its page stamp)."""
        sample = int(round(frame / self.fps * SR))
        while len(self._arrivals) > 1 and self._arrivals[0][0] <= sample:
            self._arrivals.popleft()
        _, arrived, client = self._arrivals[0]
        return arrived, client

    def _frame(self, k: int, pose: np.ndarray) -> MicFrame:
        import cv2

        tracks = Tracks(self.fps, 1)
        for name, value in zip(MOUTH_CHANNELS, pose):
            tracks.set(name, np.array([value], np.float32))
        tracks.set("blink", self.blinks[k % len(self.blinks) : k % len(self.blinks) + 1])
        frame = next(iter(self.engine.render(self.rig, tracks, None)))[..., :3]
        key = self._last is None or (k - self._last_key) >= self.opts.keyframe_s * self.fps
        if key:
            x0, y0, x1, y1 = 0, 0, frame.shape[1], frame.shape[0]
            self._last_key = k
        else:
            x0, y0, x1, y1 = _changed(self._last, frame)
        self._last = frame
        rect = (x0, y0, x1, y1)
        return MicFrame(k, _jpeg(frame, rect, self.opts.jpeg_quality), x0, y0, key, 0.0, 0.0, image=frame, rect=rect)

    def sent(self, frame: MicFrame, now: float | None = None) -> float:
        """Record that ``frame`` left the pipeline now; returns (and stamps) its latency."""
        now = time.perf_counter() if now is None else now
        frame.latency = max(0.0, now - frame.arrived)
        self.stats.add(now, frame.latency)
        if LATENCY is not None:
            LATENCY.observe(frame.latency)
            FRAMES.inc()
        return frame.latency

    # ------------------------------------------------------------------ end

    def close(self) -> None:
        """Stop the session and give its live slot back (safe to call twice)."""
        self.cancel.cancel()
        if self._closed:
            return
        self._closed = True
        if self.slot is not None:
            self.slot.release()
        if SESSIONS is not None:
            SESSIONS.dec()
        _forget(self)
        for hook in self.on_close:
            try:
                hook()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                log.debug("mic session close hook failed", exc_info=True)
        log.info("mic session %s ended after %.1f s, %d frames", self.token[:6], time.perf_counter() - self.started,
                 self.stats.frames)


def _jpeg(frame: np.ndarray, rect: tuple[int, int, int, int], quality: int) -> bytes:
    import cv2

    x0, y0, x1, y1 = rect
    if x1 <= x0 or y1 <= y0:
        return b""
    bgr = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buf.tobytes() if ok else b""


def merge(frames: list[MicFrame], quality: int = MicOptions.jpeg_quality) -> MicFrame:
    """One frame that brings a page from before ``frames`` to the last of them: the last
    frame's pixels over the union of every rectangle they changed (sent instead of a
    backlog the page cannot keep up with)."""
    last = frames[-1]
    boxes = [f.rect for f in frames if f.rect[2] > f.rect[0] and f.rect[3] > f.rect[1]]
    key = any(f.key for f in frames)
    if not boxes or last.image is None:
        rect = (0, 0, 0, 0)
    else:
        rect = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    return MicFrame(last.index, _jpeg(last.image, rect, quality) if last.image is not None else b"", rect[0], rect[1],
                    key, last.arrived, last.client_time, image=last.image, rect=rect)


ALIGN = 16  # changed rectangles snap to the JPEG block grid of the keyframe (no seams)


def _changed(prev: np.ndarray, cur: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) bounding the pixels that differ, snapped outward to :data:`ALIGN`
    (empty when nothing changed)."""
    diff = np.any(prev != cur, axis=2)
    rows = np.flatnonzero(diff.any(1))
    if not len(rows):
        return 0, 0, 0, 0
    cols = np.flatnonzero(diff[rows[0] : rows[-1] + 1].any(0))
    h, w = diff.shape
    y0, y1 = rows[0] // ALIGN * ALIGN, min(h, -(-(rows[-1] + 1) // ALIGN) * ALIGN)
    x0, x1 = cols[0] // ALIGN * ALIGN, min(w, -(-(cols[-1] + 1) // ALIGN) * ALIGN)
    return int(x0), int(y0), int(x1), int(y1)


# ---------------------------------------------------------------------------- offers and sessions


@dataclass
class Offer:
    """A mic session prepared for one browser tab, waiting for its connection."""

    token: str
    avatar: Avatar
    opts: MicOptions
    slot: Slot
    made: float = field(default_factory=time.monotonic)


_lock = threading.Lock()
_offers: dict[str, Offer] = {}
_sessions: dict[str, MicSession] = {}


def _expire(now: float) -> None:
    for token, offer in list(_offers.items()):
        if now - offer.made > OFFER_TTL_S:
            del _offers[token]
            offer.slot.release()
            log.info("mic offer %s expired unclaimed", token[:6])


def offer_session(avatar: Avatar, opts: MicOptions = MicOptions(), owner: str = "") -> str:
    """Reserve a live slot for a mic session of ``avatar``; returns the token its
    connection presents. Raises TooManySessions (a clear message) past the limit.

    A tab that already has a session or an offer (the same ``owner``) gives it up first, so
    pressing Start twice never holds two slots."""
    stop_owner(owner)
    with _lock:
        _expire(time.monotonic())
    slot = LIMITER.acquire("mic", owner)
    token = secrets.token_urlsafe(18)
    with _lock:
        _offers[token] = Offer(token, avatar, opts, slot)
    return token


def claim(token: str) -> MicSession:
    """The session for ``token`` (once: a second claim fails), its avatar prepared."""
    with _lock:
        _expire(time.monotonic())
        offer = _offers.pop(token, None)
    if offer is None:
        raise SessionNotFound("This microphone session has expired or is already in use; press Start microphone again.")
    try:
        session = MicSession(offer.avatar, offer.opts, slot=offer.slot, token=token)
    except BaseException:
        offer.slot.release()
        raise
    with _lock:
        _sessions[token] = session
    return session


def _forget(session: MicSession) -> None:
    with _lock:
        if _sessions.get(session.token) is session:
            del _sessions[session.token]


def stop(token: str) -> bool:
    """End the session or offer ``token`` (Stop on the page); False when there is none."""
    with _lock:
        offer = _offers.pop(token, None)
        session = _sessions.get(token)
    if offer is not None:
        offer.slot.release()
    if session is not None:
        session.close()
    return offer is not None or session is not None


def stop_owner(owner: str) -> int:
    """End every session and offer of ``owner`` (a browser tab); returns how many."""
    if not owner:
        return 0
    with _lock:
        tokens = [t for t, o in _offers.items() if o.slot.owner == owner]
        tokens += [t for t, s in _sessions.items() if s.slot is not None and s.slot.owner == owner]
    return sum(stop(t) for t in tokens)


def active_sessions() -> int:
    """Mic sessions connected now (offers not counted)."""
    with _lock:
        return len(_sessions)
