"""The ``eval`` subcommand: ``python launch.py eval VIDEO --phonemes FILE [--source IMAGE]
[--json OUT]`` prints the lip-sync report (and writes it as JSON with ``--json``).

Importing this module is cheap; the metrics load on use.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the evaluation; PipelineError propagates to the caller (launch.main prints it)."""
    from pipeline.quality import evaluate

    report = evaluate(args.video, phonemes=args.phonemes, text=args.text, source_image=args.source, language=args.language)
    print(report.format())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        log.info("wrote %s", args.json)
    return 0


def add_eval_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand to an argparse ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "eval",
        help="measure lip-sync quality of a rendered video",
        description="Measure lip sync (bilabial closures, open vowels, AV offset, drift) and stability "
        "(landmark jitter, PSNR outside the mouth) of a video with FaceMesh.",
    )
    p.add_argument("video", help="video file to measure (any format PyAV reads)")
    p.add_argument(
        "--phonemes",
        help="phoneme timing of the audio: JSON [{phoneme|symbol, start, end}], "
        "'start end symbol' lines (TSV / Audacity labels) or a Praat TextGrid; IPA or ARPAbet",
    )
    p.add_argument("--text", help="transcript: the video's audio is force-aligned to it (English) when --phonemes is not given")
    p.add_argument("--language", default="en", help="language of --text (default: en)")
    p.add_argument("--source", help="source face image: adds PSNR outside the mouth")
    p.add_argument("--json", help="also write the report as JSON to this file")
    p.set_defaults(func=cmd_eval)
    return p


__all__ = ["add_eval_parser", "cmd_eval"]
