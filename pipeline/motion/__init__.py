"""Motion tracks that are not lip sync: blinks, head sway and nods, brow raises."""

from pipeline.motion.blinks import blink_track
from pipeline.motion.head import gaze_track, head_tracks

__all__ = ["blink_track", "gaze_track", "head_tracks"]
