"""Avatar Studio entry point.

    python launch.py                       # the studio in the browser (127.0.0.1:7860)
    python launch.py render --text "Hello" --out hello.mp4              # the bundled sample face
    python launch.py render --avatar face.jpg --text "Hello" --out hello.mp4
    python launch.py render --avatar face.jpg --audio voice.m4a --out voice.mp4
    python launch.py models list                                        # neural models: present, size, licence
    python launch.py models pull wav2lip_gan                            # download (asks to accept the licence)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from pipeline.cli_options import add_dataclass_args, dataclass_from_args
from pipeline.options import BackgroundOptions, ExportOptions, RenderOptions, VoiceOptions

log = logging.getLogger("avatar_studio")


def _progress_printer():
    """A terminal progress bar when stderr is a TTY, quiet log lines otherwise."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}", file=sys.stderr)

        def update(fraction: float, message: str) -> None:
            bar.n = int(round(fraction * 100))
            bar.set_description(message[:28].ljust(28))
            bar.refresh()
            if fraction >= 1.0:
                bar.close()

        return update

    last = [-1.0]

    def log_update(fraction: float, message: str) -> None:
        if fraction - last[0] >= 0.25 or fraction >= 1.0:
            last[0] = fraction
            log.info("%3.0f%% %s", fraction * 100, message)

    return log_update


def request_from_args(args: argparse.Namespace):
    """The RenderRequest the command line describes (flags fill the option dataclasses)."""
    from pipeline import presets
    from pipeline.export.formats import format_for_path
    from pipeline.request import FaceSource, RenderRequest, VoiceSource

    if bool(args.text) == bool(args.audio):
        raise SystemExit("render: give exactly one of --text or --audio")
    base = presets.apply(RenderOptions(), "expressions", args.expression) if args.expression else None
    fmt = getattr(args, "ExportOptions.format", None) or format_for_path(args.out)
    return RenderRequest(
        face=FaceSource(path=args.avatar or ""),
        voice=VoiceSource(
            text=args.text or "", audio=args.audio or "", voice=dataclass_from_args(VoiceOptions, args),
            transcript=args.transcript or "", timing=args.timing, language=args.language,
        ),
        render=dataclass_from_args(RenderOptions, args, base),
        background=dataclass_from_args(BackgroundOptions, args),
        export=dataclass_from_args(ExportOptions, args, ExportOptions(format=fmt)),
    )


def cmd_render(args: argparse.Namespace) -> int:
    from pipeline.render import session_for

    t0 = time.perf_counter()
    request = request_from_args(args)
    if not request.face.path:
        log.info("no --avatar given: using the bundled sample photo")
    # a script is spoken while the first sentences render (not with a presenter's own sound mixed in)
    session = session_for(request, progress=_progress_printer(), stream_speech=args.clip_audio is None)
    if args.clip_audio is not None and session.avatar.clip is not None:
        from pipeline.media.clip_audio import with_clip_audio

        session.speech = with_clip_audio(session.speech, session.avatar, args.clip_audio)
    for w in session.avatar.warnings:
        log.warning(w)
    if request.voice.kind == "audio":
        log.info("speech timing from %s", session.speech.source)
    result = session.write(args.out, request.export_alpha)
    speech = session.speech
    if args.phonemes_out and speech.phonemes:
        from pipeline.quality import save_phonemes

        save_phonemes(speech.phonemes, args.phonemes_out)
    total = time.perf_counter() - t0
    print(
        f"Wrote {Path(result.path).resolve()} ({result.frames} frames, {result.size[0]}x{result.size[1]}, "
        f"{result.duration:.2f} s) in {total:.2f} s ({result.frames / total:.0f} frames/s overall)"
    )
    return 0


def cmd_visemes(args: argparse.Namespace) -> int:
    import pipeline
    from pipeline.visemes import export

    speech = pipeline.load_speech(args.audio, text=args.text or "", timing=args.timing, language=args.language)
    tracks = pipeline.plan(speech, RenderOptions(fps=args.fps, blinks=False))
    fmt = {"rhubarb": "rhubarb", "json": "json", "tsv": "tsv"}[args.format]
    if args.format == "rhubarb" and str(args.out).endswith(".tsv"):
        fmt = "rhubarb-tsv"
    if speech.phonemes is None and fmt.startswith("rhubarb"):
        raise SystemExit("visemes: Rhubarb shapes need phoneme timing; use --timing auto/align/phones")
    path = export.write(speech, tracks, args.out, fmt, sound_file=str(args.audio))  # type: ignore[arg-type]
    print(f"Wrote {path} ({fmt}, timing from {speech.source}, {tracks.n_frames} frames at {args.fps} fps)")
    return 0


def _job_system(args: argparse.Namespace, role: str, executor_id: str | None = None):
    """The JobSystem the top-level options describe (not started)."""
    from pipeline.jobs import JobSystem, data_dir

    return JobSystem(
        data_dir(args.data_dir), database_url=args.database_url or os.environ.get("AVATAR_STUDIO_DATABASE_URL"),
        workers=args.workers, executor_id=executor_id, role=role,
        queue_limit=getattr(args, "queue_limit", None), webhook_secret=getattr(args, "webhook_secret", None),
    )


def _extra(args: argparse.Namespace) -> dict:
    """Top-level options for the studio's routers (ServerConfig.extra)."""
    keys = ("data_dir", "workers", "database_url", "queue_limit", "api_key", "webhook_secret", "allow_open_api",
            "max_upload_mb", "max_text_chars", "max_csv_rows")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def cmd_studio(args: argparse.Namespace) -> int:
    from studio import server
    from studio.app import launch

    jobs = _job_system(args, "studio")
    jobs.max_csv_rows = getattr(args, "max_csv_rows", None)  # the Batch tab's limit
    try:
        jobs.start()  # resumes queued and running jobs; pipeline.jobs.current() for the Jobs tab and the API
        server.SHUTDOWN.append(jobs.stop)
    except Exception:  # noqa: BLE001 - the studio itself still serves; the Jobs tab and the API say jobs are off
        log.exception("The job system did not start (data dir %s, database %s): Batch, Jobs and the HTTP API "
                      "renders are off in this run", jobs.data_dir, jobs.database_url or "SQLite")
    extra = {**_extra(args), "data_dir": str(jobs.data_dir)}
    launch(host=args.host, port=args.port, share=args.share, extra=extra)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from pipeline.jobs.batch import plan_batch, run_batch

    jobs = _job_system(args, "batch")
    max_rows = getattr(args, "max_csv_rows", None)
    plan = plan_batch(args.csv, args.avatar or None, args.out_dir, max_rows=max_rows)  # every row checked first
    jobs.start()
    try:
        return run_batch(jobs, plan)
    finally:
        jobs.stop()


def cmd_worker(args: argparse.Namespace) -> int:
    """A headless executor: renders jobs from the shared queue until interrupted."""
    import signal
    import threading

    jobs = _job_system(args, "worker", executor_id=args.executor_id or None)
    jobs.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("worker %s: %d render(s) at a time from %s; Ctrl+C stops", jobs.executor_id, max(1, jobs.workers),
             "PostgreSQL" if jobs.database_url else jobs.system_database_url)
    try:
        stop.wait()
    finally:
        jobs.stop()
    return 0


def _accepts_licence(spec, yes: bool) -> bool:
    """Whether the user accepts a restricted (non-commercial, GPL) licence: --yes, or asked on a terminal."""
    if yes or not spec.restricted:
        return True
    if not sys.stdin.isatty():
        print("Pass --yes to accept this licence and download.", file=sys.stderr)
        return False
    return input("Accept this licence and download? [y/N] ").strip().lower() in ("y", "yes")


def cmd_models(args: argparse.Namespace) -> int:
    """models list [NAME...] (exit 1 when a named model is missing) | pull NAME [--local PATH] | remove NAME."""
    from pipeline import hub, models

    if args.models_command == "pull":
        spec = models.spec(args.name)
        if args.local:
            print(f"{args.name}: using {hub.pull_local(args.name, args.local)}\n{hub.licence_text(spec)}")
            return 0
        print(hub.licence_text(spec) + f"\n  {hub.human_size(spec.size)} from {spec.repo_id or '(no public checkpoint)'}")
        if not _accepts_licence(spec, args.yes):
            return 1
        print(f"{args.name}: ready at {hub.pull(args.name, progress=_progress_printer(), force=args.force)}")
        return 0
    if args.models_command == "remove":
        removed = hub.remove(args.name)
        print("\n".join(f"removed {r}" for r in removed) or f"{args.name}: nothing to remove")
        return 0
    names = args.names or list(models.catalog())
    rows = [hub.row(models.spec(n)) for n in names]
    print(hub.table(rows))
    return 0 if not args.names or all(r.present for r in rows) else 1


def _add_models_parser(sub) -> None:
    m = sub.add_parser("models", help="neural models: list, pull (download or a local file), remove")
    msub = m.add_subparsers(dest="models_command")
    ls = msub.add_parser("list", help="every model: present or not, size, licence, where (exit 1 if a NAME is missing)")
    ls.add_argument("names", nargs="*", help="only these models")
    pl = msub.add_parser("pull", help="download a model into the Hugging Face cache (verified), or use a local file")
    pl.add_argument("name", help="catalog name (see models list)")
    pl.add_argument("--local", default="", metavar="PATH", help="use this file or folder instead of downloading")
    pl.add_argument("--yes", action="store_true", help="accept a non-commercial / GPL licence without asking")
    pl.add_argument("--force", action="store_true", help="download again even when present")
    rm = msub.add_parser("remove", help="delete a model's cached download and forget its local path")
    rm.add_argument("name")
    m.set_defaults(func=cmd_models, models_command="list", names=[])


def build_parser() -> argparse.ArgumentParser:
    from pipeline.export.formats import format_info, format_names
    from pipeline.options import spec, specs
    from pipeline.request import TIMING_MODES, FaceSource, VoiceSource

    p = argparse.ArgumentParser(prog="launch.py", description="Avatar Studio: talking avatars from a photo and a voice.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="studio: address to serve on")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), help="studio: port")
    p.add_argument("--share", action="store_true", help="studio: also open a temporary public share link")
    p.add_argument("--data-dir", default=None,
                   help="jobs: where the job database, inputs and outputs live (default: $AVATAR_STUDIO_HOME, "
                   "/data on a Hugging Face Space, else the user data folder)")
    p.add_argument("--workers", type=int, default=1, help="jobs: renders at a time in this process (default: 1)")
    p.add_argument("--database-url", default=None,
                   help="jobs: PostgreSQL URL shared by several executors (default: SQLite in the data dir; "
                   "or $AVATAR_STUDIO_DATABASE_URL)")
    p.add_argument("--queue-limit", type=int, default=None,
                   help="API/jobs: queued + running jobs accepted; past it POST /api/v1/renders answers 429 with "
                   "Retry-After (default: no limit)")
    p.add_argument("--api-key", default=os.environ.get("AVATAR_STUDIO_API_KEY") or None,
                   help="API: every /api/v1 request needs 'Authorization: Bearer KEY' (default: "
                   "$AVATAR_STUDIO_API_KEY; without a key, a non-loopback server keeps /api/v1 off)")
    p.add_argument("--webhook-secret", default=os.environ.get("AVATAR_STUDIO_WEBHOOK_SECRET") or None,
                   help="webhooks: Standard Webhooks signing secret whsec_... (default: "
                   "$AVATAR_STUDIO_WEBHOOK_SECRET, else one generated and kept in the data dir)")
    p.add_argument("--allow-open-api", action="store_true",
                   help="API: serve /api/v1 without a key on a non-loopback address (anyone who reaches it can render)")
    p.add_argument("--max-upload-mb", type=float, default=None,
                   help="API: largest request body (all uploaded files) in MB; over it: 413 (default: 50)")
    p.add_argument("--max-text-chars", type=int, default=None,
                   help="API: longest script one render accepts (default: 20000)")
    p.add_argument("--max-csv-rows", type=int, default=None, help="batch: most rows one CSV may have")
    sub = p.add_subparsers(dest="command")
    r = sub.add_parser("render", help="render one video from a face and a voice")
    voice_help = {sp.name: sp for sp in specs(VoiceSource)}
    r.add_argument("--avatar", default="", help=spec(FaceSource, "path").help)
    r.add_argument("--clip-audio", type=float, default=None, metavar="DB",
                   help="a presenter clip's own sound mixed under the new voice, DB relative to it (e.g. -18); "
                   "default: dropped")
    r.add_argument("--text", help=voice_help["text"].help)
    r.add_argument("--audio", help=voice_help["audio"].help)
    r.add_argument("--transcript", help=voice_help["transcript"].help)
    r.add_argument("--timing", choices=list(voice_help["timing"].choices or ()), default="auto",
                   help=voice_help["timing"].help + " (default: auto)")
    r.add_argument("--language", default="en", help=voice_help["language"].help + " (default: en)")
    r.add_argument(
        "--out",
        required=True,
        help="output file; its suffix picks the format (" + " ".join(
            s for n in format_names() for s in format_info(n).suffixes if s) + ", no suffix = PNG-sequence folder)",
    )
    r.add_argument("--phonemes-out", help="also write the phoneme timing used (JSON, readable by `eval --phonemes`)")
    r.add_argument("--expression", help="expression preset from presets/expressions.toml: neutral, friendly, energetic, newsreader")
    add_dataclass_args(r, RenderOptions)
    add_dataclass_args(r, VoiceOptions, skip=("max_chars",))
    add_dataclass_args(r, ExportOptions)
    add_dataclass_args(r, BackgroundOptions, prefix="bg_")
    r.set_defaults(func=cmd_render)
    v = sub.add_parser("visemes", help="write the mouth-shape timeline of an audio file")
    v.add_argument("audio", help="speech audio file")
    v.add_argument("--text", help="transcript for exact timing (English)")
    v.add_argument("--timing", choices=list(TIMING_MODES), default="auto")
    v.add_argument("--language", default="en", help="language of the speech (default: en)")
    v.add_argument("--format", choices=["json", "tsv", "rhubarb"], default="json",
                   help="json/tsv: per-frame mouth pose; rhubarb: Rhubarb Lip Sync shapes A-H, X "
                   "(JSON like `rhubarb -f json`, or Rhubarb TSV when --out ends in .tsv)")
    v.add_argument("--fps", type=float, default=25.0, help="frame rate of the json/tsv pose timeline")
    v.add_argument("--out", required=True, help="output file")
    v.set_defaults(func=cmd_visemes)
    from pipeline.quality.cli import add_eval_parser

    add_eval_parser(sub)
    b = sub.add_parser("batch", help="render every row of a CSV (name,text|audio,voice,language,options...)")
    b.add_argument("csv", help="the CSV: a header line, then one row per video")
    b.add_argument("--avatar", default="", help="the presenter photo for every row (default: the sample face)")
    b.add_argument("--out-dir", required=True, help="folder for the videos and batch-summary.csv")
    b.add_argument("--workers", type=int, default=argparse.SUPPRESS, help="renders at a time (default: 1)")
    b.set_defaults(func=cmd_batch)
    w = sub.add_parser("worker", help="a headless executor for the shared job queue (PostgreSQL)")
    w.add_argument("--database-url", default=argparse.SUPPRESS, help="postgresql://user@host:port/db")
    w.add_argument("--workers", type=int, default=argparse.SUPPRESS, help="renders at a time (default: 1)")
    w.add_argument("--executor-id", default="",
                   help="stable id of this executor (default: worker-<hostname>); unique per process, the same "
                   "after a restart so that it resumes its own interrupted jobs")
    w.set_defaults(func=cmd_worker)
    _add_models_parser(sub)
    s = sub.add_parser("studio", help="serve the studio (the default)")
    s.set_defaults(func=cmd_studio)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("GLOG_minloglevel", "2")
    func = getattr(args, "func", cmd_studio)
    from pipeline.errors import PipelineError

    try:
        return func(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
