"""Reading exports back: ``probe`` (codecs, timing, colour, alpha, metadata) and pixel readers.

Alpha, per format, and how it is read back:

- WebM VP9: the colour planes are an ordinary VP9 stream; the alpha plane is a second VP9
  stream stored per block as Matroska BlockAdditional side data, flagged by the track tag
  ``alpha_mode=1``. FFmpeg's native ``vp9`` decoder ignores it and returns yuv420p; the
  ``libvpx-vp9`` decoder reads the side data and returns yuva420p. ``decode_rgba`` reads
  through :class:`pipeline.media.video.VideoReader`, which decodes such a stream that way;
  ``probe`` reports it as pix_fmt ``yuva420p`` with ``alpha=True``.
- MOV ProRes 4444: alpha is part of the ProRes frame; the decoder returns yuva444p12le.
- PNG sequence: RGBA files.
- GIF: the decoder always returns bgra (GIF transparency is one palette entry), so GIF is
  reported as ``alpha=False``: these writers never make GIF pixels transparent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np

from pipeline.errors import UnsupportedMedia
from pipeline.media.video import has_alpha, open_container, read_frames, vp9_alpha

SEQUENCE_MANIFEST = "sequence.json"  # written by the PNG-sequence writer
SEQUENCE_PATTERN = "frame_%06d.png"
SEQUENCE_AUDIO = "audio.wav"

_COLORSPACE_NAMES = {1: "bt709", 2: "unknown", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc"}
_RANGE_NAMES = {1: "tv", 2: "pc"}


def probe(path: str | Path) -> dict[str, Any]:
    """Describe a media file (or a PNG-sequence folder): codecs, size, exact timing, metadata.

    Frame and packet counts come from reading every packet (no decoding), so they are
    the real counts, not header estimates. Durations are in seconds, ``None`` when absent.
    ``alpha`` says whether the video keeps transparency (see the module notes).
    """
    p = Path(path)
    if p.is_dir():
        return _probe_sequence(p)
    container = open_container(p)

    info: dict[str, Any] = {"path": str(p), "size_bytes": p.stat().st_size}
    with container:
        info["format"] = container.format.name
        info["duration"] = container.duration / av.time_base if container.duration else None
        meta = {k.lower(): v for k, v in dict(container.metadata).items()}  # Matroska tags are upper case
        info["title"] = meta.get("title", "")
        info["comment"] = meta.get("comment", "")
        info["encoder"] = meta.get("encoder", "")
        vs = container.streams.video[0] if container.streams.video else None
        aus = container.streams.audio[0] if container.streams.audio else None
        wanted = [s for s in (vs, aus) if s is not None]
        counts = {s.index: 0 for s in wanted}
        spans: dict[int, list[float]] = {s.index: [math.inf, -math.inf] for s in wanted}
        if wanted:
            for pkt in container.demux(wanted):
                if pkt.size == 0 or pkt.pts is None:
                    continue
                counts[pkt.stream.index] += 1
                t0 = float(pkt.pts * pkt.time_base)
                t1 = t0 + float((pkt.duration or 0) * pkt.time_base)
                span = spans[pkt.stream.index]
                span[0], span[1] = min(span[0], t0), max(span[1], t1)

        def stream_duration(s: av.stream.Stream) -> float | None:
            if s.duration and s.time_base:
                return float(s.duration * s.time_base)
            lo, hi = spans[s.index]
            lo = max(lo, 0.0)  # packets before 0 are codec priming (Opus pre-skip), never shown
            return hi - lo if hi > lo else None

        if vs is not None:
            cc = vs.codec_context
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            pix_fmt = cc.pix_fmt if cc is not None else None
            vp9 = vp9_alpha(vs)
            if vp9:
                pix_fmt = "yuva420p"  # what the libvpx-vp9 decoder returns
            codec = cc.name if cc is not None else None
            info.update(
                video_codec=codec,
                pix_fmt=pix_fmt,
                alpha=vp9 or (codec != "gif" and has_alpha(pix_fmt)),
                video_profile=cc.profile if cc is not None else None,
                codec_tag=vs.codec_tag or None,
                width=vs.width,
                height=vs.height,
                fps=float(rate) if rate else None,
                fps_rational=f"{rate.numerator}/{rate.denominator}" if rate else None,
                frames=counts[vs.index],
                video_duration=stream_duration(vs),
                color_space=_COLORSPACE_NAMES.get(int(cc.colorspace), "other") if cc is not None else None,
                color_range=_RANGE_NAMES.get(int(cc.color_range), "unknown") if cc is not None else None,
            )
        else:
            info.update(video_codec=None, alpha=False, frames=0, video_duration=None)
        if aus is not None:
            cc = aus.codec_context
            info.update(
                audio_codec=cc.name if cc is not None else None,
                audio_rate=aus.rate,
                audio_channels=cc.channels if cc is not None else None,
                audio_packets=counts[aus.index],
                audio_duration=stream_duration(aus),
            )
        else:
            info.update(audio_codec=None, audio_rate=None, audio_duration=None)
    info["faststart"] = _moov_first(p)
    return info


def _sequence_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("frame_*.png"))


def _probe_sequence(folder: Path) -> dict[str, Any]:
    """Describe a PNG-sequence folder from its manifest, its files and its audio.wav."""
    files = _sequence_files(folder)
    if not files:
        raise UnsupportedMedia(f"'{folder.name}' is a folder with no frame_*.png images.")
    manifest: dict[str, Any] = {}
    mpath = folder / SEQUENCE_MANIFEST
    if mpath.is_file():
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UnsupportedMedia(f"'{folder.name}/{SEQUENCE_MANIFEST}' is unreadable: {exc}.") from exc
    first = probe(files[0])
    num, _, den = str(manifest.get("fps", "")).partition("/")
    fps = float(num) / float(den or 1) if num else None
    info: dict[str, Any] = {
        "path": str(folder),
        "size_bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
        "format": "png_sequence",
        "title": manifest.get("title", ""),
        "comment": manifest.get("tool", ""),
        "encoder": "",
        "video_codec": first["video_codec"],
        "pix_fmt": first["pix_fmt"],
        "alpha": bool(first["alpha"]),
        "video_profile": None,
        "codec_tag": None,
        "width": first["width"],
        "height": first["height"],
        "fps": fps,
        "fps_rational": manifest.get("fps"),
        "frames": len(files),
        "video_duration": len(files) / fps if fps else None,
        "color_space": "srgb",
        "color_range": "pc",
        "faststart": None,
    }
    audio = folder / SEQUENCE_AUDIO
    if audio.is_file():
        a = probe(audio)
        info.update({k: a[k] for k in ("audio_codec", "audio_rate", "audio_channels", "audio_duration")})
    else:
        info.update(audio_codec=None, audio_rate=None, audio_duration=None)
    spans = [d for d in (info["video_duration"], info["audio_duration"]) if d]
    info["duration"] = max(spans) if spans else None
    return info


def decode_rgba(path: str | Path, limit: int | None = None) -> Iterator[np.ndarray]:
    """The video frames of ``path`` as uint8 RGBA ``(H, W, 4)`` arrays, with their real alpha.

    WebM VP9 with alpha is decoded with libvpx-vp9 (see the module notes); a format
    without alpha gives alpha 255. A PNG-sequence folder yields its files in order.
    """
    p = Path(path)
    if p.is_dir():
        for i, f in enumerate(_sequence_files(p)):
            if limit is not None and i >= limit:
                return
            yield from decode_rgba(f)
        return
    yield from read_frames(p, format="rgba", limit=limit)


def read_alpha(path: str | Path) -> np.ndarray:
    """The alpha plane (uint8 ``(H, W)``, 255 = opaque) of the first frame of ``path``."""
    for rgba in decode_rgba(path, limit=1):
        return np.ascontiguousarray(rgba[:, :, 3])
    raise UnsupportedMedia(f"'{Path(path).name}' has no video frames.")


def _moov_first(path: Path) -> bool | None:
    """True when the MP4 index (moov) precedes the media data (mdat); None if not an MP4."""
    try:
        with open(path, "rb") as fh:
            pos = 0
            for _ in range(64):
                fh.seek(pos)
                head = fh.read(16)
                if len(head) < 8:
                    return None
                size = int.from_bytes(head[:4], "big")
                kind = head[4:8]
                if kind == b"moov":
                    return True
                if kind == b"mdat":
                    return False
                if size == 1 and len(head) == 16:
                    size = int.from_bytes(head[8:16], "big")
                if size < 8:
                    return None
                pos += size
    except OSError:
        return None
    return None
