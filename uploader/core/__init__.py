"""The Qt-free core: library, store, ingest, compression, engine. Never imports Qt."""
