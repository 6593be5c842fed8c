"""Uploader: put documents away safely, one file at a time."""

__version__ = "0.1.0"
