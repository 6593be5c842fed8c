"""What a file's bytes say about it: truncated documents, already-compressed formats.

Pure functions over a file's head and tail; no I/O.
"""

from __future__ import annotations

HEAD = 64
# The ZIP end-of-central-directory record is 22 bytes plus a comment of up to 64 KiB.
TAIL = 22 + 65535

_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"IEND\xaeB`\x82"
_ZIP_LOCAL = b"PK\x03\x04"
_ZIP_EOCD = b"PK\x05\x06"


def kind_of(head: bytes) -> str | None:
    """The document format the first bytes announce, if it is one we check."""
    if head.startswith(b"%PDF-"):
        return "PDF"
    if head.startswith(_PNG):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(_ZIP_LOCAL):
        return "ZIP"
    return None


def corruption(head: bytes, tail: bytes) -> str | None:
    """Why the document is structurally truncated, or None when it looks whole.

    Lenient on purpose: the end marker may sit anywhere in the tail, since many
    writers append padding or metadata after it; a truncated file loses its end.
    """
    kind = kind_of(head)
    if kind == "PDF" and b"%%EOF" not in tail[-2048:]:
        return "truncated PDF: no %%EOF marker"
    if kind == "PNG" and _PNG_IEND not in tail:
        return "truncated PNG: no IEND chunk"
    if kind == "JPEG" and b"\xff\xd9" not in tail[-65536:]:
        return "truncated JPEG: no end-of-image marker"
    if kind == "ZIP" and _ZIP_EOCD not in tail:
        return "truncated ZIP/Office file: no end-of-central-directory record"
    return None


# Formats whose content is already compressed; zstd would only waste time on them.
_COMPRESSED_MAGIC: tuple[bytes, ...] = (
    b"\xff\xd8\xff",  # JPEG
    _PNG,
    _ZIP_LOCAL,  # ZIP, docx/xlsx/pptx, odt, epub, jar
    b"\x1f\x8b",  # gzip
    b"\x28\xb5\x2f\xfd",  # zstd
    b"\xfd7zXZ\x00",  # xz
    b"BZh",  # bzip2
    b"7z\xbc\xaf\x27\x1c",  # 7z
    b"Rar!\x1a\x07",  # rar
    b"GIF8",
    b"OggS",
    b"fLaC",
    b"ID3",  # mp3
    b"\x1a\x45\xdf\xa3",  # mkv/webm
)


def already_compressed(head: bytes) -> bool:
    if head.startswith(_COMPRESSED_MAGIC):
        return True
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"AVI "):
        return True
    # ISO media (mp4, mov, heic, avif): "ftyp" box at offset 4
    return head[4:8] == b"ftyp"
