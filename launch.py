"""Avatar Studio entry point.

    python launch.py                       # the studio in the browser (127.0.0.1:7860)
    python launch.py render --avatar face.jpg --text "Hello" --out hello.mp4
    python launch.py render --avatar face.jpg --audio voice.m4a --out voice.mp4
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


SUFFIX_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".webm": "webm", ".mov": "mov", ".gif": "gif", ".wav": "wav"}


def _format_from_suffix(out: str) -> ExportOptions:
    """Export defaults whose format follows the output name (a name without a known
    suffix is a PNG-sequence folder); an explicit --format wins."""
    suffix = Path(out).suffix.lower()
    return ExportOptions(format=SUFFIX_FORMATS.get(suffix, "png" if not suffix else "mp4"))  # type: ignore[arg-type]


def cmd_render(args: argparse.Namespace) -> int:
    import pipeline
    from pipeline import presets

    if bool(args.text) == bool(args.audio):
        raise SystemExit("render: give exactly one of --text or --audio")
    t0 = time.perf_counter()
    base = presets.apply(RenderOptions(), "expressions", args.expression) if args.expression else None
    render_opts = dataclass_from_args(RenderOptions, args, base)
    voice_opts = dataclass_from_args(VoiceOptions, args)
    export_opts = dataclass_from_args(ExportOptions, args, _format_from_suffix(args.out))
    avatar = pipeline.prepare_avatar(args.avatar, name=Path(args.avatar).stem)
    for w in avatar.warnings:
        log.warning(w)
    if args.text:
        speech = pipeline.synthesize(args.text, voice_opts)
    else:
        speech = pipeline.load_speech(args.audio, text=args.transcript or "", timing=args.timing, language=args.language)
        log.info("speech timing from %s", speech.source)
    background = dataclass_from_args(BackgroundOptions, args)
    result = pipeline.render_to_file(
        avatar, speech, args.out, render_opts, export_opts, progress=_progress_printer(), background=background
    )
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


def cmd_studio(args: argparse.Namespace) -> int:
    from studio.app import launch

    launch(host=args.host, port=args.port, share=args.share)
    return 0


def pipeline_timing_modes() -> tuple[str, ...]:
    from pipeline.speech.recording import TIMING_MODES

    return TIMING_MODES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="launch.py", description="Avatar Studio: talking avatars from a photo and a voice.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="studio: address to serve on")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), help="studio: port")
    p.add_argument("--share", action="store_true", help="studio: also open a temporary public share link")
    sub = p.add_subparsers(dest="command")
    r = sub.add_parser("render", help="render one video from a face and a voice")
    r.add_argument("--avatar", required=True, help="face image (any format Pillow reads)")
    r.add_argument("--text", help="what the avatar says (spoken with TTS)")
    r.add_argument("--audio", help="speech audio file instead of text (wav, mp3, m4a, ogg, flac, ...)")
    r.add_argument("--transcript", help="with --audio: what is said, for exact phoneme timing (English)")
    r.add_argument(
        "--timing",
        choices=list(pipeline_timing_modes()),
        default="auto",
        help="with --audio: how mouth timing is found: align (pocketsphinx, English), synth (alignment "
        "by espeak-ng synthesis, any language), phones (recognition, English), acoustic (any audio); "
        "auto picks the best available (default)",
    )
    r.add_argument("--language", default="en", help="with --audio: language of the speech, e.g. en, de, pt-br (default: en)")
    r.add_argument(
        "--out",
        required=True,
        help="output file; its suffix picks the format (.mp4 .webm .mov .gif .wav, no suffix = PNG-sequence folder)",
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
    v.add_argument("--timing", choices=list(pipeline_timing_modes()), default="auto")
    v.add_argument("--language", default="en", help="language of the speech (default: en)")
    v.add_argument("--format", choices=["json", "tsv", "rhubarb"], default="json",
                   help="json/tsv: per-frame mouth pose; rhubarb: Rhubarb Lip Sync shapes A-H, X "
                   "(JSON like `rhubarb -f json`, or Rhubarb TSV when --out ends in .tsv)")
    v.add_argument("--fps", type=float, default=25.0, help="frame rate of the json/tsv pose timeline")
    v.add_argument("--out", required=True, help="output file")
    v.set_defaults(func=cmd_visemes)
    from pipeline.quality.cli import add_eval_parser

    add_eval_parser(sub)
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
