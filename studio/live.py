"""The Live tab: a streaming preview of the script (and the mic-driven avatar's panel).

``live_tab(ctx)`` builds the tab. The microphone panel comes from ``studio.live_mic``
(``mic_panel(ctx)``) when that module is present; without it the tab still works and a log
line says the panel is missing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gradio as gr

if TYPE_CHECKING:
    from studio.app import StudioContext

log = logging.getLogger(__name__)


def _mic_panel(ctx: StudioContext) -> None:
    try:
        from studio.live_mic import mic_panel
    except ImportError as exc:
        log.info("Live tab: no microphone panel (studio.live_mic not importable: %s)", exc)
        return
    mic_panel(ctx)


def live_tab(ctx: StudioContext) -> None:
    with gr.Tab("Live", id="live"):
        gr.Markdown("## Live preview")
        _mic_panel(ctx)
