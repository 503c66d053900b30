"""Speech: TTS engines, recorded/uploaded audio, phoneme timing."""
