"""Model weights on request: Hugging Face downloads, checksums, local paths, the models table.

    hub.pull("wav2lip_gan", progress=cb)        # into the HF cache, verified; resumes a partial download
    hub.pull_local("wav2lip", "/data/wav2lip.pth")   # verified, remembered in <data>/models.json
    hub.rows()                                  # every catalog model: present or not, size, licence, where
    hub.remove("wav2lip")                       # the cached copy deleted, a remembered local path forgotten

Nothing here runs unless the user asked (``launch.py models pull``, the Models panel's
button). ``HF_HUB_OFFLINE=1`` or an unreachable Hub is a :class:`ModelDownloadError` within
seconds: the Hub is probed with a short TCP connect before any download. After a download
every file is checked against the catalog's sha256 and size, or, where the catalog has
none, against the Hub's own LFS sha256 (the ``X-Linked-Etag`` of the file); a mismatch
deletes the file and raises.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from pipeline import models
from pipeline.errors import ModelDownloadError, ModelMissing
from pipeline.models import ModelFile, ModelSpec

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
PROBE_TIMEOUT = 3.0  # seconds for the TCP probe of the Hub
ETAG_TIMEOUT = 8.0  # seconds for the Hub's metadata answer (huggingface_hub's default is 10)
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ModelRow:
    """One line of the models table (CLI list, Models panel)."""

    name: str
    title: str
    kind: str
    present: bool
    where: str  # the file/folder when present, else "" ; "random weights / local path only" for no repo
    source: str  # "hub cache" | "local path" | "missing" | "no public checkpoint"
    size: int | None  # bytes: on disk when present, else the catalog's
    licence: str  # weights licence
    restricted: bool  # non-commercial / GPL: pulling asks for consent
    repo: str  # "owner/name@revision" or ""


def offline() -> bool:
    """Whether downloads are off (``HF_HUB_OFFLINE`` set now or when huggingface_hub was imported)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def endpoint() -> str:
    """The Hub's base URL (``HF_ENDPOINT``, default https://huggingface.co)."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def reachable(url: str | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to the Hub's host opens within ``timeout`` (name lookup included)."""
    parsed = urlparse(url or endpoint())
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    ok: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)  # a hanging name lookup is not waited for
    return bool(ok)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, f: ModelFile, sha256: str | None = None, size: int | None = None) -> None:
    """ModelDownloadError when ``path`` is not the file ``f`` (size first, then sha256).

    ``sha256`` / ``size`` are the expected values where the catalog has none (the Hub's)."""
    want_size = f.size or size
    got_size = path.stat().st_size
    if want_size and got_size != want_size:
        raise ModelDownloadError(f"{path} has {got_size:,} bytes, {f.filename} should have {want_size:,}.")
    want = f.sha256 or sha256
    if want:
        got = sha256_of(path)
        if got != want:
            raise ModelDownloadError(f"{path} is not the expected {f.filename}: sha256 {got[:12]}..., "
                                     f"expected {want[:12]}...")
    else:
        log.warning("no sha256 known for %s: checked its size only", f.filename)


# ---------------------------------------------------------------------------- the table


def _disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def row(s: ModelSpec) -> ModelRow:
    """The table line of ``s`` (looks at the disk only, never the network)."""
    try:
        where = models.locate(s)
    except ModelMissing:
        where = None
    if where is not None:
        source = "local path" if s.name in models.local_paths() else "hub cache"
    else:
        source = "missing" if s.repo_id else "no public checkpoint"
    rev = s.revision[:10] if len(s.revision) == 40 else s.revision  # a commit: its short form
    repo = f"{s.repo_id}@{rev}" if s.repo_id else ""
    size = _disk_size(where) if where is not None else s.size
    return ModelRow(s.name, s.title, s.kind, where is not None, str(where or ""), source, size, s.weights_licence,
                    s.restricted, repo)


def rows() -> list[ModelRow]:
    """Every catalog model, present or not."""
    return [row(s) for s in models.catalog().values()]


def licence_text(s: ModelSpec) -> str:
    """What is shown before downloading ``s``."""
    return (f"{s.title} ({s.name})\n  code: {s.code_licence}\n  weights: {s.weights_licence}\n"
            f"  {s.licence_note}").rstrip()


def human_size(n: int | None) -> str:
    if not n:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


# ---------------------------------------------------------------------------- downloads


def _hub_sha256(s: ModelSpec, f: ModelFile) -> tuple[str | None, int | None]:
    """The Hub's LFS sha256 and size of ``f`` (None for a non-LFS file: its etag is a git hash)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url(s.repo_id, f.filename, revision=s.revision, endpoint=endpoint()),
                                timeout=ETAG_TIMEOUT, endpoint=endpoint())
    etag = (meta.etag or "").strip('"').lower()
    sha = etag if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else None
    return sha, meta.size


def _watch(folder: Path, total: int | None, base: int, progress: Progress, label: str, stop: threading.Event) -> None:
    """Report the growth of ``*.incomplete`` blobs under ``folder`` until ``stop``."""
    while not stop.wait(0.5):
        try:
            done = sum(p.stat().st_size for p in folder.glob("blobs/*.incomplete")) if folder.is_dir() else 0
            if total:
                progress(min(0.99, (base + done) / total), f"{label}: {human_size(base + done)} of {human_size(total)}")
        except Exception:  # noqa: BLE001 - a file renamed under us, a progress sink that refuses: keep downloading
            log.debug("download progress not reported", exc_info=True)


def _repo_folder(s: ModelSpec) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{s.repo_id.replace('/', '--')}"


def _delete_cached(path: Path) -> None:
    """Delete a cached snapshot file and the blob it links to."""
    blob = path.resolve()
    for p in {path, blob}:
        try:
            p.unlink()
        except OSError:
            pass


def _download_error(s: ModelSpec, exc: BaseException) -> ModelDownloadError:
    text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return ModelDownloadError(f"Downloading {s.name} from {endpoint()}/{s.repo_id} failed: {text}. "
                              f"Check the connection, or give a local file: "
                              f"`python launch.py models pull {s.name} --local PATH`.")


def pull(name: str, progress: Progress | None = None, force: bool = False) -> Path:
    """Download the weights of ``name`` into the HF cache (verified); the path ``build`` gets.

    Already present and verified files are not downloaded again (``force`` does). Offline
    or an unreachable Hub: ModelDownloadError within seconds."""
    s = models.spec(name)
    progress = progress or (lambda f, m: None)
    if not s.repo_id:
        raise ModelMissing(models.missing_message(s))
    present = models.locate(s)
    if present is not None and not force:
        progress(1.0, f"{name} is already here")
        return present
    if offline():
        raise ModelDownloadError(f"Cannot download {name}: offline mode (HF_HUB_OFFLINE is set). Unset it and pull "
                                 f"again, or give a local file: `python launch.py models pull {name} --local PATH`.")
    if not reachable():
        raise ModelDownloadError(f"Cannot download {name}: {endpoint()} cannot be reached (no network?). "
                                 f"Give a local file instead: `python launch.py models pull {name} --local PATH`.")
    from huggingface_hub import hf_hub_download

    total = s.size
    base = 0
    for i, f in enumerate(s.files):
        label = f"{name} {i + 1}/{len(s.files)} {Path(f.filename).name}"
        progress(base / total if total else i / len(s.files), label)
        try:
            hub_sha, hub_size = (None, None) if f.sha256 and f.size else _hub_sha256(s, f)
        except Exception as exc:  # noqa: BLE001 - httpx / huggingface_hub errors of every kind
            raise _download_error(s, exc) from exc
        stop = threading.Event()
        context = contextvars.copy_context()  # a UI progress bar (gr.Progress) reads its request from the context
        watcher = threading.Thread(target=context.run, args=(_watch, _repo_folder(s), total, base, progress, label, stop),
                                   daemon=True)
        watcher.start()
        try:
            path = Path(hf_hub_download(s.repo_id, f.filename, revision=s.revision, etag_timeout=ETAG_TIMEOUT,
                                        force_download=force, endpoint=endpoint()))
        except Exception as exc:  # noqa: BLE001
            raise _download_error(s, exc) from exc
        finally:
            stop.set()
            watcher.join(1.0)
        progress(base / total if total else (i + 0.9) / len(s.files), f"{label}: verifying")
        try:
            verify_file(path, f, hub_sha, hub_size)
        except ModelDownloadError:
            _delete_cached(path)
            raise
        base += path.stat().st_size
    found = models.locate(s)
    if found is None:  # pragma: no cover - the files were just written
        raise ModelDownloadError(f"{name} was downloaded but is not found in the HF cache.")
    models.release(name)  # a later predictor() loads the new weights
    progress(1.0, f"{name} ready")
    log.info("pulled %s into %s", name, found)
    return found


def pull_local(name: str, path: str | Path) -> Path:
    """Use the weights of ``name`` at ``path`` (a file or a folder); verified, then remembered."""
    s = models.spec(name)
    folder = Path(path).expanduser().resolve()
    found = models.weights_in(folder, s) if s.files else (folder if folder.is_file() else None)
    if found is None:
        wanted = ", ".join(f.filename for f in s.files) or "one weights file"
        raise ModelMissing(f"{folder} does not hold the weights of {name} ({wanted}).")
    for f in s.files:
        file = found if found.is_file() else found / f.filename
        verify_file(file, f)
    if not s.files:  # no catalog file: remember the file as given
        found = folder
    models.remember_local(name, found)
    models.release(name)
    log.info("%s: using local weights %s", name, found)
    return found


def remove(name: str) -> list[str]:
    """Forget a remembered local path and delete the HF cache copy of ``name``; what was removed."""
    s = models.spec(name)
    removed: list[str] = []
    models.release(name)
    if name in models.local_paths():
        removed.append(f"local path {models.local_paths()[name]} (forgotten, the file is kept)")
        models.remember_local(name, None)
    for f in s.files:
        cached = models.cached_file(s, f)
        if cached is not None:
            _delete_cached(cached)
            removed.append(str(cached))
    return removed


def table(items: list[ModelRow]) -> str:
    """The models table as text (``launch.py models list``)."""
    head = ("name", "kind", "present", "size", "licence", "where")
    lines = [(r.name, r.kind, "yes" if r.present else "no", human_size(r.size), r.licence.split(" (")[0],
              r.where or r.source + (f" ({r.repo})" if r.repo else "")) for r in items]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    widths[4] = min(widths[4], 44)
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    out = [fmt.format(*head)] + [fmt.format(*(c[:44] if i == 4 else c for i, c in enumerate(line))) for line in lines]
    return "\n".join(out)


def release(name: str | None = None) -> list[str]:
    """Drop resident predictors (all when None) and free CUDA memory (the Models panel's Release)."""
    return models.release(name)


def resident() -> list[str]:
    """The predictors held now, as ``name (backend, device, precision)``."""
    out = []
    for key in models.resident():
        _, name, backend, device, precision, _ = key.split(":", 5)
        out.append(f"{name} ({backend}, {device}, {precision})")
    return out
