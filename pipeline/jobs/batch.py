"""Batch rendering from a CSV: one presenter photo, one row per video.

Columns: ``name`` (the output's stem), ``text`` or ``audio``, ``transcript``, ``voice``,
``language``, ``timing``, ``expression``, and any render, voice, export or background option
under its CLI name (``fps``, ``size``, ``speed``, ``format``, ``subtitles``, ``bg_mode``,
``bg_color``, ...; ``-`` and ``_`` are the same). An empty cell keeps the default. With
``language`` and no ``voice``, a text row is spoken by the best voice for that language.

Every row is checked before anything renders (:func:`plan_batch`); a bad row is reported as
``line N: reason`` (the header is line 1) and the good rows still render. Each good row is
one job whose ``row_key`` hashes the row's content (request, photo and audio content, name,
output folder): running the same batch again skips rows already done and picks up rows a
killed run left queued or running (:func:`submit_plan`). The summary (:func:`summary`) is
printed and written to ``<out dir>/batch-summary.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipeline.errors import InvalidOption, PipelineError
from pipeline.jobs.runner import avatar_for, output_path
from pipeline.media import file_digest
from pipeline.jobs.store import Job
from pipeline.jobs.system import JobSystem, check_name
from pipeline.options import BackgroundOptions, ExportOptions, OptionSpec, RenderOptions, VoiceOptions, specs
from pipeline.request import FaceSource, RenderRequest, VoiceSource

log = logging.getLogger(__name__)

SUMMARY_NAME = "batch-summary.csv"
SUMMARY_FIELDS = ("line", "name", "state", "reason", "output", "seconds", "job")
_SOURCE_COLUMNS = ("text", "audio", "transcript", "timing", "language")


@dataclass
class BatchRow:
    line: int  # CSV line (the header is line 1)
    name: str
    request: RenderRequest | None = None
    error: str | None = None  # "line N: reason" when the row cannot render
    key: str | None = None  # content key (jobs store row_key)
    output: Path | None = None


@dataclass
class BatchPlan:
    csv: Path
    out_dir: Path
    batch_id: str
    rows: list[BatchRow] = field(default_factory=list)

    @property
    def good(self) -> list[BatchRow]:
        return [r for r in self.rows if r.error is None]

    @property
    def errors(self) -> list[str]:
        return [r.error for r in self.rows if r.error is not None]

    # for callers that only hold the plan (the Batch tab goes through the facade)
    def submit(self, system: JobSystem) -> dict[int, tuple[Job, bool]]:
        return submit_plan(system, self)

    def table(self, system: JobSystem, jobs: dict[int, tuple[Job, bool]]) -> list[dict[str, Any]]:
        return summary(system, self, jobs)

    def results(self, system: JobSystem, jobs: dict[int, tuple[Job, bool]]) -> Path:
        """Write the summary CSV and zip it with the finished videos; returns the zip."""
        write_summary(self, summary(system, self, jobs))
        return zip_results(system, self, jobs)


def _columns() -> dict[str, tuple[str, OptionSpec | None]]:
    """Column name -> (option group, spec); groups: source, voice, render, export, background, name, expression."""
    cols: dict[str, tuple[str, OptionSpec | None]] = {"name": ("name", None), "expression": ("expression", None)}
    for s in specs(VoiceSource):
        if s.name in _SOURCE_COLUMNS:
            cols[s.name] = ("source", s)
    for s in specs(VoiceOptions):
        if s.name != "max_chars":
            cols[s.name] = ("voice", s)
    for cls, group in ((RenderOptions, "render"), (ExportOptions, "export")):
        for s in specs(cls):
            cols[s.name] = (group, s)
    for s in specs(BackgroundOptions):
        cols["bg_" + s.name] = ("background", s)
    return cols


def _column_name(header: str) -> str:
    return header.strip().lstrip("-").strip().lower().replace("-", "_").replace(" ", "_")


_TRUE = {"true", "yes", "1", "on", "y"}
_FALSE = {"false", "no", "0", "off", "n"}


def _value(s: OptionSpec, raw: str) -> Any:
    text = raw.strip()
    if s.kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise InvalidOption(f"{s.name} must be true or false, not {raw!r}.")
    if s.kind in (int, float):
        try:
            number = float(text)
        except ValueError:
            raise InvalidOption(f"{s.name} must be a number, not {raw!r}.") from None
        if s.kind is int:
            if not number.is_integer():
                raise InvalidOption(f"{s.name} must be a whole number, not {raw!r}.")
            return int(number)
        return int(number) if number.is_integer() and text.lstrip("+-").isdigit() else number
    return raw if s.name in ("text", "transcript") else text


def _check_voice(voice_id: str) -> None:
    """An unknown voice, or a Piper voice that is not downloaded, is refused before rendering."""
    from pipeline.speech import voices

    voice = voices.resolve(voice_id)  # ModelUnavailable for an unknown id
    if voice.source.startswith("hf:") and voices.piper_files(voice) is None:
        raise InvalidOption(f"The voice {voice_id!r} is not downloaded; download it on the studio's Voice tab "
                            "(needs internet once) or choose another voice.")


def _voice_for_language(language: str) -> str:
    from pipeline.speech import voices

    found = voices.voices_for(language)
    if not found:
        raise InvalidOption(f"No voice speaks the language {language!r}; name a voice in the voice column.")
    for v in found:  # the best offline choice: bundled or already downloaded
        if not v.source.startswith("hf:") or voices.piper_files(v) is not None:
            return v.id
    return found[0].id


def _row_request(values: dict[str, tuple[str, OptionSpec | None, str]], avatar: str, base_dir: Path,
                 audio_files: dict[str, Path]) -> tuple[str, RenderRequest]:
    from pipeline import presets

    groups: dict[str, dict[str, Any]] = {g: {} for g in ("source", "voice", "render", "export", "background")}
    name, expression = "", ""
    for column, (group, s, raw) in values.items():
        if not raw.strip():
            continue
        if group == "name":
            name = raw.strip()
        elif group == "expression":
            expression = raw.strip()
        else:
            assert s is not None
            groups[group][s.name] = _value(s, raw)
    src = groups["source"]
    text, audio = src.get("text", ""), src.get("audio", "")
    if not str(text).strip() and not audio:
        raise InvalidText_("empty text and no audio: give the row a text or an audio file")
    if str(text).strip() and audio:
        raise InvalidText_("both text and audio: give one of them")
    if audio:
        src["audio"] = str(_find_audio(audio, base_dir, audio_files))
    elif src.get("language") and "voice" not in groups["voice"]:
        groups["voice"]["voice"] = _voice_for_language(src["language"])
    voice = VoiceOptions(**groups["voice"])
    if not audio:
        _check_voice(voice.voice)
    base = presets.apply(RenderOptions(), "expressions", expression) if expression else RenderOptions()
    request = RenderRequest(
        face=FaceSource(path=avatar),
        voice=VoiceSource(voice=voice, **src),
        render=dataclasses.replace(base, **groups["render"]),
        background=_background(groups["background"], base_dir, audio_files),
        export=ExportOptions(**groups["export"]),
    )
    return name, request.validate(check_files=True)


class InvalidText_(InvalidOption):
    """A row with nothing (or two things) to say."""

    code = "invalid_text"


def _find_audio(value: str, base_dir: Path, audio_files: dict[str, Path]) -> Path:
    if Path(value).name in audio_files:
        return audio_files[Path(value).name]
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise InvalidOption(f"audio file {value!r} was not found (paths are relative to the CSV's folder)")
    return path


def _background(values: dict[str, Any], base_dir: Path, files: dict[str, Path]) -> BackgroundOptions:
    for key in ("image", "video"):
        if values.get(key):
            value = values[key]
            path = files.get(Path(value).name) or (Path(value) if Path(value).is_absolute() else base_dir / value)
            if not path.is_file():
                raise InvalidOption(f"background {key} {value!r} was not found (relative to the CSV's folder)")
            values[key] = str(path)
    return BackgroundOptions(**values)


def row_key(request: RenderRequest, name: str, out_dir: Path) -> str:
    """The content key of a row: the request with its files replaced by their contents' hashes."""
    data = request.to_dict()
    for group, attr in (("face", "path"), ("voice", "audio"), ("background", "image"), ("background", "video")):
        path = data[group][attr]
        data[group][attr] = file_digest(path) if path else ""
    text = json.dumps({"request": data, "name": name, "out_dir": str(out_dir)}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plan_batch(csv_path: str | Path, avatar: str | Path | None, out_dir: str | Path, *, max_rows: int | None = None,
               audio_files: dict[str, Path] | None = None, prepare: bool = True) -> BatchPlan:
    """Read and check every row. Problems with the file itself (unreadable, no rows, unknown
    columns, too many rows, an avatar without a usable face) raise PipelineError; row problems
    are kept on their rows."""
    csv_path = Path(csv_path)
    out_dir = Path(out_dir).expanduser().resolve()
    try:
        raw = csv_path.read_bytes()
    except OSError as exc:
        raise InvalidOption(f"The CSV {csv_path} cannot be read: {exc.strerror or exc}.") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidOption(f"The CSV {csv_path.name} is not UTF-8 text (byte {exc.start}).") from exc
    avatar_path = str(Path(avatar).expanduser().resolve()) if avatar else ""
    if avatar_path and not Path(avatar_path).is_file():
        raise InvalidOption(f"The avatar photo {avatar} was not found.")
    if prepare:  # once per batch: a photo without a usable face stops here, and the renders find it cached
        avatar_for(avatar_path)
    digest = hashlib.sha256(raw + (file_digest(avatar_path) if avatar_path else "").encode())
    plan = BatchPlan(csv_path, out_dir, digest.hexdigest()[:16])
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidOption(f"The CSV {csv_path.name} is empty: it needs a header line (name,text,...).") from None
    except csv.Error as exc:
        raise InvalidOption(f"line 1: {exc}") from exc
    columns = _columns()
    names = [_column_name(h) for h in header]
    unknown = [h for h, n in zip(header, names) if n not in columns]
    if unknown:
        raise InvalidOption(f"line 1: unknown column(s) {', '.join(repr(u) for u in unknown)}; known: name, text, "
                            f"audio, transcript, voice, language and the CLI option names ({', '.join(list(columns)[:12])}, ...).")
    if "text" not in names and "audio" not in names:
        raise InvalidOption("line 1: the CSV needs a text or an audio column.")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidOption(f"line 1: repeated column(s) {', '.join(dupes)}.")
    seen: dict[str, int] = {}
    line = 1
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            plan.rows.append(BatchRow(start, "", error=f"line {start}: {exc}"))
            break
        line = start
        if not any(c.strip() for c in cells):
            continue  # blank lines are not rows
        if max_rows is not None and len(plan.rows) >= max_rows:
            raise InvalidOption(f"The CSV has more than {max_rows} rows (the limit); split it into smaller batches.")
        row = BatchRow(line, "")
        plan.rows.append(row)
        if len(cells) > len(names):
            row.error = f"line {line}: {len(cells)} cells but {len(names)} columns"
            continue
        values = {n: (*columns[n], cells[i] if i < len(cells) else "") for i, n in enumerate(names)}
        try:
            name, request = _row_request(values, avatar_path, csv_path.parent, audio_files or {})
            row.name = check_name(name or f"row-{line:03d}", "name")
            if row.name.lower() in seen:
                raise InvalidOption(f"the name {row.name!r} is used on line {seen[row.name.lower()]} too")
            seen[row.name.lower()] = line
            row.request = request
            row.output = output_path(out_dir, row.name, request.export.format)
            row.key = row_key(request, row.name, out_dir)
        except PipelineError as exc:
            row.name = row.name or (values.get("name", ("", None, ""))[2].strip())
            row.error = f"line {line}: {exc.message.rstrip('.')}"
    if not plan.rows:
        raise InvalidOption(f"The CSV {csv_path.name} has a header but no rows.")
    return plan


def plan_in(system: JobSystem, csv_path: str | Path, avatar: str | Path | None, **kwargs: Any) -> BatchPlan:
    """:func:`plan_batch` for a batch of the Batch tab: its output folder is
    ``<data dir>/batches/<batch id>`` (the id hashes the CSV and the photo)."""
    if system is None:
        raise PipelineError("The job system is not running in this process.")
    plan = plan_batch(csv_path, avatar, system.data_dir / "batches" / "_", **kwargs)
    return plan_batch(csv_path, avatar, system.data_dir / "batches" / plan.batch_id, **{**kwargs, "prepare": False})


def submit_plan(system: JobSystem, plan: BatchPlan) -> dict[int, tuple[Job, bool]]:
    """A job for every good row: the earlier job when that row is done or still in flight
    (a killed run resumes), else a new one. Returns {line: (job, reused)}."""
    out: dict[int, tuple[Job, bool]] = {}
    assert system.store is not None
    for row in plan.good:
        assert row.request is not None and row.key is not None
        earlier = next((j for j in system.store.by_row_key(row.key) if j.state in ("done", "queued", "running")), None)
        if earlier is not None:
            out[row.line] = (earlier, True)
            continue
        job = system.submit(row.request, name=row.name, batch=plan.batch_id, out_dir=plan.out_dir, row_key=row.key,
                            line=row.line)
        out[row.line] = (job, False)
    return out


def summary(system: JobSystem, plan: BatchPlan, jobs: dict[int, tuple[Job, bool]]) -> list[dict[str, Any]]:
    """One dict per row (SUMMARY_FIELDS), the jobs read fresh from the store."""
    rows = []
    for row in plan.rows:
        if row.error is not None:
            rows.append({"line": row.line, "name": row.name, "state": "invalid", "reason": row.error, "output": "",
                         "seconds": "", "job": ""})
            continue
        first, reused = jobs[row.line]
        job = system.store.get(first.id) or first  # type: ignore[union-attr]
        reason = (job.error or {}).get("message", "") if job.state in ("failed", "cancelled") else ""
        if reused and first.state == "done":
            reason = "done in an earlier run (skipped)"
        rows.append({"line": row.line, "name": row.name, "state": job.state, "reason": reason,
                     "output": job.outputs[0] if job.state == "done" and job.outputs else str(row.output or ""),
                     "seconds": job.timings.get("total", ""), "job": job.id})
    return rows


def write_summary(plan: BatchPlan, rows: list[dict[str, Any]]) -> Path:
    """``<out dir>/batch-summary.csv``, written atomically."""
    import os

    plan.out_dir.mkdir(parents=True, exist_ok=True)
    path = plan.out_dir / SUMMARY_NAME
    tmp = path.with_name(f".{SUMMARY_NAME}.partial")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(SUMMARY_FIELDS))
        w.writeheader()
        w.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def run_batch(system: JobSystem, plan: BatchPlan, echo: Callable[[str], None] = print, poll: float = 0.5) -> int:
    """Submit, wait, summarise (the ``launch.py batch`` command). 0 only when every row is done."""
    for error in plan.errors:
        echo(error)
    jobs = submit_plan(system, plan)
    skipped = sum(1 for j, reused in jobs.values() if reused and j.state == "done")
    resumed = sum(1 for j, reused in jobs.values() if reused and j.state != "done")
    echo(f"batch {plan.batch_id}: {len(plan.rows)} rows, {len(plan.errors)} invalid, {skipped} done before "
         f"(skipped), {resumed} resumed, {len(jobs) - skipped - resumed} new; output in {plan.out_dir}")
    pending = {j.id: line for line, (j, _) in jobs.items()}
    finished_before = {j.id for j, reused in jobs.values() if j.finished}
    done_count = len(finished_before)
    t0 = time.monotonic()
    while pending:
        for job_id in list(pending):
            job = system.store.get(job_id)  # type: ignore[union-attr]
            if job is None or not job.finished:
                continue
            del pending[job_id]
            if job_id in finished_before:
                continue
            done_count += 1
            what = f"{job.timings.get('duration', 0):.1f} s video in {job.timings.get('total', 0):.1f} s" \
                if job.state == "done" else (job.error or {}).get("message", "")
            echo(f"[{done_count}/{len(jobs)}] line {job.line} {job.name}: {job.state} ({what})")
        if pending:
            time.sleep(poll)
    rows = summary(system, plan, jobs)
    path = write_summary(plan, rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    echo(f"summary: {', '.join(f'{n} {s}' for s, n in sorted(counts.items()))} in {time.monotonic() - t0:.1f} s; "
         f"written to {path}")
    for r in rows:
        if r["state"] != "done":
            echo(f"  line {r['line']} {r['name'] or '(no name)'}: {r['state']}: {r['reason']}")
    return 0 if all(r["state"] == "done" for r in rows) else 1


def zip_results(system: JobSystem, plan: BatchPlan, jobs: dict[int, tuple[Job, bool]]) -> Path:
    """A zip of the batch's finished videos and its summary, in the output folder."""
    import zipfile

    path = plan.out_dir / f"batch-{plan.batch_id}.zip"
    tmp = path.with_name(f".{path.name}.partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for first, _ in jobs.values():
            job = system.store.get(first.id) if system.store else None
            if job is not None and job.state == "done":
                for out in job.outputs:
                    if Path(out).is_file():
                        zf.write(out, Path(out).name)
        summary_path = plan.out_dir / SUMMARY_NAME
        if summary_path.is_file():
            zf.write(summary_path, SUMMARY_NAME)
    tmp.replace(path)
    return path
