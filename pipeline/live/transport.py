"""The mic avatar's transport: one WebSocket per browser tab, on the studio's own port.

Why a WebSocket and not WebRTC: a Hugging Face Space (or any studio behind an HTTPS
proxy) exposes one TCP port and no UDP, and no TURN server is assumed, so WebRTC's media
path has nothing to connect over there (aiortc has no ICE-TCP); a WebSocket rides the
same ``https``/``wss`` connection as the page. The measurements behind the choice are in
the README (Live microphone).

Protocol (``/live/mic/ws/{token}``, the token from :func:`pipeline.live.mic.offer_session`):

- page -> server, binary: a float64 page clock stamp (ms, little-endian), then mono int16
  PCM at 16 kHz (the page's AudioWorklet sends 20 ms blocks); text ``{"type": "stop"}``
  ends the session.
- server -> page, text JSON: ``{"type": "ready", "width", "height", "fps", "lookahead_ms"}``
  once, ``{"type": "stats", "latency_ms", "latency_p95_ms", "fps", "frames", "dropped"}``
  twice a second (``dropped``: frames skipped or merged because the machine or the link fell
  behind), ``{"type": "error", "code", "message"}`` before closing on a failure.

``GET /live/mic/metrics`` serves the mic metrics (Prometheus text), ``GET /live/mic/status``
the session counts.

- server -> page, binary: a frame, :data:`pipeline.live.mic.HEADER` (kind 0 = whole
  frame, 1 = changed rectangle at x, y; index; server latency in ms; the page stamp of the
  frame's audio, echoed) followed by the JPEG (empty when nothing changed).

Rendering runs in one worker thread per connection; the event loop only moves bytes.
Closing the socket (Stop, or the tab closed) cancels the session and frees its live slot
at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import struct
import threading
import time

import numpy as np
from fastapi import APIRouter, Response, WebSocket
from starlette.websockets import WebSocketState

from pipeline.errors import PipelineError
from pipeline.live import mic
from pipeline.render import Cancelled

log = logging.getLogger(__name__)

PREFIX = "/live/mic"
STATS_EVERY_S = 0.5
MAX_BACKLOG = 8  # frames waiting to be sent; past this they are merged into one (the page skips ahead)
_STAMP = struct.Struct("<d")


def router() -> APIRouter:
    """The mic transport's routes (mounted on the studio's FastAPI app)."""
    r = APIRouter(prefix=PREFIX, tags=["live"])

    @r.websocket("/ws/{token}")
    async def mic_socket(websocket: WebSocket, token: str) -> None:
        await serve(websocket, token)

    @r.get("/status")
    async def mic_status() -> dict:
        from pipeline.live import LIMITER

        return {"mic_sessions": mic.active_sessions(), "live_sessions": LIMITER.active, "limit": LIMITER.limit}

    @r.get("/metrics")
    async def mic_metrics() -> Response:
        """The mic avatar's Prometheus metrics (latency histogram, frames, sessions)."""
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        names = {"avatar_studio_live_mic_latency_seconds", "avatar_studio_live_mic_frames",
                 "avatar_studio_live_mic_sessions"}
        return Response(generate_latest(_Only(REGISTRY, names)), media_type=CONTENT_TYPE_LATEST)

    return r


class _Only:
    """A view of a registry with only the named metric families (for generate_latest)."""

    def __init__(self, registry, names: set[str]) -> None:
        self.registry, self.names = registry, names

    def collect(self):
        return (m for m in self.registry.collect() if m.name in self.names)


async def serve(ws: WebSocket, token: str) -> None:
    """Run one mic session over ``ws`` until the page stops or goes away."""
    await ws.accept()
    try:
        session = await asyncio.to_thread(mic.claim, token)
    except PipelineError as exc:
        await _close_with(ws, exc.code, str(exc))
        return
    loop = asyncio.get_running_loop()
    inbox: queue.Queue = queue.Queue()
    outbox: asyncio.Queue = asyncio.Queue()

    def put(item: object) -> None:
        loop.call_soon_threadsafe(outbox.put_nowait, item)

    def work() -> None:
        try:
            while True:
                blocks, end = [inbox.get()], False
                while not inbox.empty():  # what queued up while the last blocks were rendered
                    blocks.append(inbox.get_nowait())
                if None in blocks:
                    blocks, end = blocks[: blocks.index(None)], True
                for frame in session.feed_blocks(blocks):
                    put(frame)
                if end:
                    break
        except Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001 - reported to the page, then the session ends
            log.exception("mic session %s failed", token[:6])
            put({"type": "error", "code": getattr(exc, "code", "internal_error"), "message": str(exc)})
        finally:
            put(None)

    # Stop from elsewhere (the Stop button's handler, the server shutting down) ends the connection too
    session.on_close.append(lambda: (inbox.put(None), put(None)))
    worker = threading.Thread(target=work, name=f"live-mic-{token[:6]}", daemon=True)
    worker.start()
    w, h = session.size
    await ws.send_json({"type": "ready", "width": w, "height": h, "fps": session.fps,
                        "lookahead_ms": round(1000 * session.visemes.lookahead, 1)})
    sender = asyncio.create_task(_send_frames(ws, session, outbox))
    try:
        while True:
            receive = asyncio.ensure_future(ws.receive())
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:  # the sender ended (an error was sent): stop
                receive.cancel()
                break
            msg = receive.result()
            if msg["type"] == "websocket.disconnect":
                break
            data = msg.get("bytes")
            if data:
                if len(data) < _STAMP.size + 2:
                    continue
                stamp = _STAMP.unpack_from(data)[0]
                pcm = np.frombuffer(data, "<i2", offset=_STAMP.size).astype(np.int16)
                inbox.put((pcm, time.perf_counter(), stamp))
            elif msg.get("text"):
                try:
                    if json.loads(msg["text"]).get("type") == "stop":
                        break
                except (ValueError, AttributeError):
                    continue
    except Exception:  # noqa: BLE001 - a broken socket ends the session like a close
        log.debug("mic socket %s ended", token[:6], exc_info=True)
    finally:
        session.close()  # cancels the worker between frames and frees the slot
        inbox.put(None)
        sender.cancel()
        await asyncio.to_thread(worker.join, 1.0)
        if ws.application_state == WebSocketState.CONNECTED:
            try:
                await ws.close()
            except Exception:  # noqa: BLE001
                pass


async def _send_frames(ws: WebSocket, session: mic.MicSession, outbox: asyncio.Queue) -> None:
    last_stats, dropped = 0.0, 0
    while True:
        item = await outbox.get()
        if item is None:
            return
        if isinstance(item, dict):  # an error from the worker
            await _close_with(ws, item["code"], item["message"])
            return
        if outbox.qsize() >= MAX_BACKLOG:  # the page cannot keep up: one frame that covers the backlog
            backlog, end = [item], None
            while not outbox.empty():
                nxt = outbox.get_nowait()
                if nxt is None or isinstance(nxt, dict):
                    end = nxt
                    break
                backlog.append(nxt)
            item = await asyncio.to_thread(mic.merge, backlog, session.opts.jpeg_quality)
            dropped += len(backlog) - 1
            if end is not None:
                outbox.put_nowait(end)
        session.sent(item)
        await ws.send_bytes(item.header() + item.data)
        now = time.perf_counter()
        if now - last_stats >= STATS_EVERY_S:
            last_stats = now
            await ws.send_json({"type": "stats", **session.stats.summary(now), "dropped": dropped + session.skipped})


async def _close_with(ws: WebSocket, code: str, message: str) -> None:
    try:
        await ws.send_json({"type": "error", "code": code, "message": message})
        await ws.close(code=4000)
    except Exception:  # noqa: BLE001 - the page may be gone already
        pass
