"""Motion tracks that are not lip sync: blinks (more to come: head sway, brows)."""

from pipeline.motion.blinks import blink_track

__all__ = ["blink_track"]
