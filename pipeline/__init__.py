"""Avatar Studio pipeline."""
