"""The window: a thin Qt layer over uploader.core; no storage or retry rules here."""
