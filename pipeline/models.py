"""The process-wide model cache and the model registry.

Every model (FaceMesh, Piper voices, segmenters, neural engines) is loaded through
:func:`get`: lazily on first use, once per process, never at import. Loading is
serialised per key so two requests that need the same model wait for one load.

Some runtimes (MediaPipe graphs) are not safe to call from two threads at once;
:func:`get` returns the model and a lock that callers hold while running it.

The registry declares every neural network once, in ``presets/models.toml``
(:func:`catalog`, :func:`spec`): Hugging Face repo, files, sha256 and size, licences,
backend, builder and input/output signature. :func:`predictor` gives a resident
:class:`~pipeline.backends.Predictor` for one of them (weights from the HF cache or a local
path, or random), :func:`release` drops them. Downloads live in :mod:`pipeline.hub` and
happen only when the user asks.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import logging
import sys
import threading
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline import paths
from pipeline.errors import InvalidOption, ModelMissing, ModelUnavailable

log = logging.getLogger(__name__)


@dataclass
class Entry:
    model: Any
    lock: threading.Lock  # hold while calling a model that is not thread-safe


_entries: dict[str, Entry] = {}
_key_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def get(key: str, loader: Callable[[], Any]) -> Entry:
    """The cached entry for ``key``, loading it with ``loader()`` the first time."""
    entry = _entries.get(key)
    if entry is not None:
        return entry
    with _guard:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        entry = _entries.get(key)
        if entry is None:
            log.info("loading model %s", key)
            entry = Entry(loader(), threading.Lock())
            _entries[key] = entry
    return entry


def loaded() -> list[str]:
    """Keys of the models loaded so far (for diagnostics and tests)."""
    return sorted(_entries)


def clear() -> None:
    """Drop every cached model (tests)."""
    with _guard:
        _entries.clear()


def drop(prefix: str) -> list[str]:
    """Drop the cached entries whose key starts with ``prefix``; their keys."""
    with _guard:
        keys = [k for k in _entries if k.startswith(prefix)]
        for k in keys:
            del _entries[k]
    return keys


# ---------------------------------------------------------------------------- the registry

CATALOG_PATH = Path(__file__).resolve().parents[1] / "presets" / "models.toml"
KINDS = ("engine", "matting", "features", "vae", "unet", "test")
RESERVED_OPTIONS = ("torch_build", "dims", "example", "cpu_backend")  # read by predictor(), not passed to build
_DTYPES = {"float32": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32}


@dataclass(frozen=True)
class ModelFile:
    """One file of a model, as its Hugging Face repo holds it."""

    filename: str  # path inside the repo, e.g. "musetalkV15/unet.pth"
    sha256: str | None  # hex digest of the file; None: checked against the Hub's own LFS hash at download
    size: int | None  # bytes; None when not known ahead


@dataclass(frozen=True)
class ModelSpec:
    """A network the studio can load: where its weights live, their licence, how to build it."""

    name: str  # catalog name, e.g. "wav2lip"
    title: str  # one line for people
    kind: str  # "engine" | "matting" | "features" | "vae" | "unet" | "test"
    repo_id: str  # Hugging Face repo; "" = no public checkpoint (random weights / local path only)
    revision: str  # branch, tag or commit of repo_id
    files: tuple[ModelFile, ...]  # the weights; several files: build gets the folder holding them
    code_licence: str  # licence of the network code the weights were trained with
    weights_licence: str  # licence of the weights
    licence_note: str  # shown before downloading
    backend: str  # default backend: "torch" | "onnx"
    build: str  # "module:function": build(weights: Path | None, **options) -> torch.nn.Module (eval mode)
    inputs: dict[str, str]  # name -> "B,6,96,96 float32" (B = batch), in the network's order
    outputs: dict[str, str]  # name -> signature, in the network's order
    options: dict[str, Any] = field(default_factory=dict)  # passed to build (variant, size, ...)

    @property
    def size(self) -> int | None:
        """Bytes of all files, None when one is not known."""
        sizes = [f.size for f in self.files]
        return None if not sizes or any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    @property
    def restricted(self) -> bool:
        """Whether the licence limits use (non-commercial, copyleft): pulling asks for consent."""
        text = f"{self.code_licence} {self.weights_licence}".lower()
        return any(w in text for w in ("non-commercial", "noncommercial", "research", "gpl"))

    @property
    def build_options(self) -> dict[str, Any]:
        """The options ``build`` receives (reserved keys removed)."""
        return {k: v for k, v in self.options.items() if k not in RESERVED_OPTIONS}


def parse_signature(text: str) -> tuple[tuple[int | str, ...], str]:
    """``"B,6,96,96 float32"`` -> ``((\"B\", 6, 96, 96), "float32")``; a symbol is a dynamic axis."""
    shape, _, dtype = text.strip().partition(" ")
    dtype = dtype.strip() or "float32"
    if dtype not in _DTYPES:
        raise InvalidOption(f"Unknown dtype {dtype!r} in signature {text!r}; use one of {', '.join(_DTYPES)}.")
    dims: list[int | str] = []
    for d in shape.split(","):
        d = d.strip()
        if d.isdigit():
            dims.append(int(d))
        elif d.isidentifier():
            dims.append(d)
        else:
            raise InvalidOption(f"Bad dimension {d!r} in signature {text!r} (a number or a symbol such as B or H).")
    return tuple(dims), dtype


def _spec_from_toml(name: str, raw: dict[str, Any]) -> ModelSpec:
    try:
        files = tuple(
            ModelFile(str(f["filename"]), str(f.get("sha256") or "").lower() or None, int(f["size"]) if f.get("size") else None)
            for f in raw.get("files", ())
        )
        s = ModelSpec(
            name=name, title=str(raw["title"]), kind=str(raw["kind"]), repo_id=str(raw.get("repo_id", "")),
            revision=str(raw.get("revision", "main")), files=files, code_licence=str(raw["code_licence"]),
            weights_licence=str(raw["weights_licence"]), licence_note=str(raw.get("licence_note", "")),
            backend=str(raw.get("backend", "torch")), build=str(raw["build"]), inputs=dict(raw["inputs"]),
            outputs=dict(raw["outputs"]), options=dict(raw.get("options", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidOption(f"presets/models.toml: model {name!r} is malformed ({exc!r}).") from exc
    validate(s)
    return s


def validate(s: ModelSpec) -> None:
    """InvalidOption naming what is wrong with ``s``."""
    def bad(why: str) -> InvalidOption:
        return InvalidOption(f"Model {s.name!r}: {why}.")

    if s.kind not in KINDS:
        raise bad(f"kind {s.kind!r} is not one of {', '.join(KINDS)}")
    if s.backend not in ("torch", "onnx"):
        raise bad(f"backend {s.backend!r} is not torch or onnx")
    for target in (s.build, s.options.get("torch_build", "m:f"), s.options.get("example", "m:f")):
        module, _, func = str(target).partition(":")
        if not module or not func:
            raise bad(f"build target {target!r} is not 'module:function'")
    if not s.inputs or not s.outputs:
        raise bad("inputs and outputs must be named")
    for sig in (*s.inputs.values(), *s.outputs.values()):
        parse_signature(sig)
    if s.repo_id and not s.files:
        raise bad("a repo_id needs files")
    for f in s.files:
        if f.sha256 is not None and (len(f.sha256) != 64 or any(c not in "0123456789abcdef" for c in f.sha256)):
            raise bad(f"sha256 of {f.filename} is not 64 hex digits")
    if s.backend == "onnx" and not s.options.get("torch_build") and not all(f.filename.endswith(".onnx") for f in s.files):
        raise bad("an onnx-backend model needs .onnx files or a torch_build option")


@lru_cache(maxsize=4)
def _load_catalog(path: str) -> dict[str, ModelSpec]:
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    return {name: _spec_from_toml(name, entry) for name, entry in raw.items()}


_extra_specs: dict[str, ModelSpec] = {}


def register(s: ModelSpec) -> ModelSpec:
    """Add a spec at run time (tests, plug-ins); it shadows a catalog entry of the same name."""
    validate(s)
    _extra_specs[s.name] = s
    return s


def unregister(name: str) -> None:
    _extra_specs.pop(name, None)


def catalog() -> dict[str, ModelSpec]:
    """Every model the studio knows, from ``presets/models.toml`` (imports neither torch nor ORT)."""
    return {**_load_catalog(str(CATALOG_PATH)), **_extra_specs}


def spec(name: str) -> ModelSpec:
    """The spec of ``name``; an unknown name is an InvalidOption listing the known ones."""
    specs = catalog()
    if name not in specs:
        raise InvalidOption(f"Unknown model {name!r}; known models: {', '.join(sorted(specs))}.")
    return specs[name]


# ---------------------------------------------------------------------------- where the weights are


def local_paths_file() -> Path:
    """``<data>/models.json``: local weights paths remembered by ``models pull NAME --local PATH``."""
    return paths.data_dir() / "models.json"


def local_paths() -> dict[str, str]:
    """Model name -> remembered local file or folder."""
    try:
        data = json.loads(local_paths_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.get("local", {}).items()} if isinstance(data, dict) else {}


def remember_local(name: str, path: str | Path | None) -> None:
    """Remember (or forget, with None) the local weights path of ``name``."""
    known = local_paths()
    if path is None:
        known.pop(name, None)
    else:
        known[name] = str(Path(path).expanduser().resolve())
    file = local_paths_file()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps({"local": known}, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(file)


def weights_in(folder: Path, s: ModelSpec) -> Path | None:
    """What ``build`` gets from a folder or file holding ``s``'s files: the file itself for a
    one-file model, else the folder that holds every file at its repo path (or by its name)."""
    if folder.is_file():
        return folder if len(s.files) <= 1 else None
    if not folder.is_dir():
        return None
    if len(s.files) == 1:
        f = s.files[0].filename
        for candidate in (folder / f, folder / Path(f).name):
            if candidate.is_file():
                return candidate
        return None
    if all((folder / f.filename).is_file() for f in s.files):
        return folder
    return None


def cached_file(s: ModelSpec, f: ModelFile) -> Path | None:
    """The HF cache's copy of one file of ``s`` (no network), or None."""
    if not s.repo_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(s.repo_id, f.filename, revision=s.revision)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def locate(s: ModelSpec, local_path: str | Path | None = None) -> Path | None:
    """The weights of ``s`` on this machine: ``local_path`` > the remembered local path > the HF
    cache. A one-file model gives its file, a several-file model the folder holding them."""
    if local_path:
        found = weights_in(Path(local_path).expanduser(), s)
        if found is None:
            raise ModelMissing(f"{local_path} does not hold the weights of {s.name} "
                               f"({', '.join(f.filename for f in s.files) or 'no files declared'}).")
        return found
    remembered = local_paths().get(s.name)
    if remembered:
        found = weights_in(Path(remembered), s)
        if found is not None:
            return found
        log.warning("the remembered local path of %s (%s) no longer holds its weights", s.name, remembered)
    if not s.files:
        return None
    hits = [cached_file(s, f) for f in s.files]
    if any(h is None for h in hits):
        return None
    if len(hits) == 1:
        return hits[0]
    root = hits[0]
    for _ in Path(s.files[0].filename).parts:  # the snapshot folder: <cache>/snapshots/<commit>/<filename>
        root = root.parent  # type: ignore[union-attr]
    return root


def missing_message(s: ModelSpec) -> str:
    """What to do when the weights of ``s`` are not here."""
    if not s.repo_id:
        return (f"{s.title} ({s.name}) has no public checkpoint: give a local file with "
                f"`python launch.py models pull {s.name} --local PATH`, or use random weights (--random-weights).")
    return (f"The weights of {s.title} ({s.name}) are not on this machine. Download them with "
            f"`python launch.py models pull {s.name}` or the Pull button in the studio's Models panel, "
            f"or give a local file with `python launch.py models pull {s.name} --local PATH`.")


# ---------------------------------------------------------------------------- predictors


def _import(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelUnavailable(f"The network code {target} is not available ({exc}).") from exc


def _build(s: ModelSpec, target: str, weights: Path | None) -> Any:
    import torch

    if weights is not None:
        return _import(target)(weights, **s.build_options).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _import(target)(None, **s.build_options).eval()


def example_inputs(s: ModelSpec, batch: int = 1, dims: dict[str, int] | None = None, **hook_kwargs: Any
                   ) -> dict[str, np.ndarray]:
    """Example inputs of ``s``'s signature: seeded random floats, integer zeros; symbol sizes from
    ``dims`` > ``options.dims`` > 64, B = ``batch``. An ``options.example = "module:function"``
    hook replaces them (called with ``batch``, ``hook_kwargs`` and the build options)."""
    if s.options.get("example"):
        return dict(_import(str(s.options["example"]))(batch=batch, **{**s.build_options, **hook_kwargs}))
    sizes = {**dict(s.options.get("dims", {})), **(dims or {}), "B": batch}
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    for n, sig in s.inputs.items():
        shape_dims, dtype = parse_signature(sig)
        shape = tuple(d if isinstance(d, int) else int(sizes.get(d, 64)) for d in shape_dims)
        if np.issubdtype(_DTYPES[dtype], np.integer):
            out[n] = np.zeros(shape, _DTYPES[dtype])
        else:
            out[n] = rng.standard_normal(shape).astype(_DTYPES[dtype])
    return out


def dynamic_axes(s: ModelSpec) -> dict[str, dict[int, str]]:
    """Every symbolic dimension of the signatures as a named dynamic ONNX axis."""
    axes: dict[str, dict[int, str]] = {}
    for n, sig in {**s.inputs, **s.outputs}.items():
        dims, _ = parse_signature(sig)
        named = {i: d for i, d in enumerate(dims) if isinstance(d, str)}
        if named:
            axes[n] = named
    return axes


def _export_path(s: ModelSpec, weights: Path | None, precision: str) -> Path:
    """Where the ONNX export of ``s`` (these weights, this precision) is kept."""
    stamp = "random-seed0"
    if weights is not None:
        st = weights.stat()
        stamp = f"{weights.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    key = json.dumps([s.name, s.build, s.options, s.inputs, s.outputs, stamp, precision], sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return paths.data_dir() / "onnx" / f"{s.name}-{precision}-{digest}.onnx"


def _onnx_predictor(s: ModelSpec, weights: Path | None, device: str, precision: str) -> Any:
    from pipeline.backends.onnx_backend import OrtPredictor

    if weights is not None and weights.is_file() and weights.suffix == ".onnx":
        return OrtPredictor(weights, device=device, name=s.name)
    target = str(s.options.get("torch_build") or s.build)
    path = _export_path(s, weights, precision)
    if not path.is_file():
        from pipeline.backends.torch_backend import export_onnx

        module = _build(s, target, weights)
        if precision == "fp16":
            module = module.half()  # a float16 graph, traced on the CPU (half kernels there suffice to trace)
        try:
            export_onnx(module, example_inputs(s), list(s.outputs), path, dynamic_axes=dynamic_axes(s))
        except RuntimeError:
            if precision != "fp16" or device != "cuda":
                raise
            log.info("%s: tracing in half precision on the CPU failed; tracing on CUDA", s.name)
            export_onnx(module.to("cuda"), example_inputs(s), list(s.outputs), path, dynamic_axes=dynamic_axes(s))
    return OrtPredictor(path, device=device, name=s.name)


def predictor(name: str, *, backend: str | None = None, device: str | None = None, precision: str | None = None,
              random_weights: bool = False, local_path: str | Path | None = None) -> Any:
    """The resident predictor of model ``name`` (loaded once per process, shared, see :func:`release`).

    ``backend`` defaults to the spec's (on the CPU a torch-built model runs exported in ONNX
    Runtime unless its options say ``cpu_backend = "torch"``), ``device`` to CUDA when there is one, ``precision`` to
    fp16 on CUDA and fp32 on the CPU. Missing weights (and not ``random_weights``) are a
    :class:`ModelMissing` that says how to pull them. ``random_weights`` builds the network
    with ``torch.manual_seed(0)``. ``backend="onnx"`` for a torch-built model exports it once
    to ``<data>/onnx`` and runs the export in ONNX Runtime.
    """
    from pipeline.backends.base import BACKENDS, check_precision, pick_device

    s = spec(name)
    device = pick_device(device)
    if backend is None:  # on the CPU, ONNX Runtime runs these networks 5-14x faster than eager torch
        backend = s.options.get("cpu_backend", "onnx") if device == "cpu" and s.backend == "torch" else s.backend
    if backend not in BACKENDS:
        raise InvalidOption(f"Unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}.")
    precision = check_precision(precision or ("fp16" if device == "cuda" else "fp32"), device)
    weights = None if random_weights else locate(s, local_path)
    if weights is None and not random_weights:
        raise ModelMissing(missing_message(s))
    if backend == "torch" and weights is not None and weights.suffix == ".onnx":
        if not s.options.get("torch_build"):
            raise InvalidOption(f"{name} is an ONNX file; run it with backend='onnx'.")
        raise InvalidOption(f"{name} holds ONNX weights; for torch use its torch twin's catalog entry.")
    key = f"predictor:{name}:{backend}:{device}:{precision}:{'random' if weights is None else weights}"

    def load() -> Any:
        if backend == "onnx":
            return _onnx_predictor(s, weights, device, precision)
        from pipeline.backends.torch_backend import TorchPredictor

        module = _build(s, s.build, weights)
        return TorchPredictor(module, tuple(s.inputs), tuple(s.outputs), device=device, precision=precision, name=name)

    return get(key, load).model


def resident() -> list[str]:
    """Cache keys of the predictors held now."""
    return [k for k in loaded() if k.startswith("predictor:")]


def release(name: str | None = None) -> list[str]:
    """Drop the resident predictors of ``name`` (all when None) and free CUDA memory; the keys dropped."""
    keys = drop(f"predictor:{name}:" if name else "predictor:")
    if keys:
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        log.info("released %s", ", ".join(keys))
    return keys
