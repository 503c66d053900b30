"""Reading and conditioning media: audio decoding, resampling and loudness (``audio``)."""
