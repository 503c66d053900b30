"""Multipart (or URL-encoded) bodies with a size limit, safe file names, and probes of what was uploaded.

The body is read as a stream and counted while it arrives, so an upload over the limit is
refused with 413 as soon as it passes the limit (and at once when its Content-Length says
so), without spooling the rest. Uploaded files are saved under names of our own in a
staging folder (the client's file name only lends its suffix, and is refused when it tries
to name a path), then probed: an empty, truncated or undecodable file is bad input (422)
before a job exists.
"""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path
from typing import AsyncIterator

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from pipeline.api.errors import ApiError
from pipeline.errors import UnsupportedMedia

_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_FILES = 4
MAX_FIELDS = 16


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large",
                    f"The upload is larger than this server's limit of {limit / 1048576:g} MB "
                    "(--max-upload-mb).")


async def read_form(request: Request, max_bytes: int, max_field_bytes: int) -> FormData:
    """The form of ``request`` (multipart, or URL-encoded for a form without files); 415 for
    any other body, 413 over ``max_bytes``."""
    ctype = request.headers.get("content-type", "").lower()
    multipart = ctype.startswith("multipart/form-data")
    if not multipart and not ctype.startswith("application/x-www-form-urlencoded"):
        raise ApiError(415, "unsupported_content_type",
                       "Send the render as multipart/form-data (curl -F field=value -F avatar=@face.jpg), "
                       f"not {ctype.split(';')[0] or 'an empty content type'}.")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "bad_request", "The Content-Length header is not a number.")
        if int(length) > max_bytes:
            raise _too_large(max_bytes)

    async def limited() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > max_bytes:
                raise _too_large(max_bytes)
            yield chunk

    if not multipart:  # text fields only; the body limit still applies
        return await FormParser(request.headers, limited()).parse()
    parser = MultiPartParser(request.headers, limited(), max_files=MAX_FILES, max_fields=MAX_FIELDS,
                             max_part_size=max_field_bytes)
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, "bad_request", f"The multipart body could not be read: {exc.message}.") from exc


def safe_suffix(filename: str | None, field: str) -> str:
    """The suffix of an uploaded file's name; refuses names that try to be paths."""
    name = filename or ""
    if _CONTROL.search(name) or "/" in name or "\\" in name or name in (".", "..") or len(name) > 255:
        raise ApiError(400, "bad_request",
                       f"The file name of '{field}' ({name[:80]!r}) is not a plain file name; "
                       "send the file's own name without folders.")
    suffix = Path(name).suffix
    return suffix.lower() if _SUFFIX.fullmatch(suffix) else ""


def save_upload(upload: UploadFile, folder: Path, field: str) -> Path:
    """Write an uploaded file to ``folder/<field><suffix>`` (our name, the client's suffix)."""
    path = folder / f"{field}{safe_suffix(upload.filename, field)}"
    upload.file.seek(0)
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    return path


# ---------------------------------------------------------------------------- probes


def _not_empty(path: Path, what: str) -> None:
    if path.stat().st_size == 0:
        raise UnsupportedMedia(f"The {what} upload is empty (0 bytes).")


def probe_visual(path: Path, what: str) -> str:
    """"image" or "video" for a file that decodes as one; UnsupportedMedia otherwise."""
    from PIL import Image, UnidentifiedImageError

    from pipeline.media.image import MAX_PIXELS

    _not_empty(path, what)
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise UnsupportedMedia(f"The {what} is {img.width}x{img.height}; images up to "
                                       f"{MAX_PIXELS // 1_000_000} megapixels are supported.")
            img.load()
        return "image"
    except UnidentifiedImageError:
        pass  # not an image: perhaps a video
    except UnsupportedMedia:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnsupportedMedia(f"The {what} image is damaged or truncated ({exc}).") from exc
    if _first_video_frame(path):
        return "video"
    raise UnsupportedMedia(f"The {what} upload is neither an image nor a video this server can read "
                           "(or it is damaged or truncated).")


def _first_video_frame(path: Path) -> bool:
    """Whether ``path`` is a video whose first frame decodes; UnsupportedMedia when its
    packets end well before the duration its header declares (a cut-off upload)."""
    import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if not container.streams.video:
                return False
            stream = container.streams.video[0]
            if next(iter(container.decode(stream)), None) is None:
                return False
            declared = (container.duration or 0) / 1e6
            container.seek(0)
            end = 0.0
            for packet in container.demux(stream):
                if packet.pts is not None and stream.time_base is not None:
                    end = max(end, float((packet.pts + (packet.duration or 0)) * stream.time_base))
            start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
    except (av.FFmpegError, OSError, ValueError, StopIteration):
        return False
    got = end - start
    if declared > 0 and declared - got > max(0.25, 0.05 * declared):
        raise UnsupportedMedia(f"The video upload is truncated: its header says {declared:.1f} s, "
                               f"its frames end at {got:.1f} s.")
    return True


def probe_audio(path: Path, what: str = "audio") -> float:
    """Seconds of audible speech in a recording; UnsupportedMedia / SilentAudio when it is
    empty, truncated, undecodable or silent."""
    import av

    from pipeline.media.audio import load_audio

    _not_empty(path, what)
    _check_riff(path, what)
    clip = load_audio(path)  # UnsupportedMedia, SilentAudio
    try:
        with av.open(str(path), metadata_errors="replace") as container:
            declared = (container.duration or 0) / 1e6
    except (av.FFmpegError, OSError):  # pragma: no cover - load_audio opened it a moment ago
        declared = 0.0
    if declared > 0 and declared - clip.duration > max(0.5, 0.05 * declared):
        raise UnsupportedMedia(f"The {what} upload is truncated: its header says {declared:.1f} s, "
                               f"only {clip.duration:.1f} s could be decoded.")
    return clip.duration


def _check_riff(path: Path, what: str) -> None:
    """A WAV whose RIFF header promises more bytes than the file has was cut off."""
    with path.open("rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    declared = struct.unpack("<I", head[4:8])[0] + 8
    if declared not in (8, 0xFFFFFFFF + 8) and declared > path.stat().st_size:
        raise UnsupportedMedia(f"The {what} upload is truncated: the WAV header says {declared} bytes, "
                               f"the file has {path.stat().st_size}.")
