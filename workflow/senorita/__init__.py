"""Señorita-style instruction-based video-editing dataset construction."""

__version__ = "0.1.0"
