"""Decoding: the temporal CFW decoder over windows and tiles, and the colour fix."""
