"""What a file holds, from its first bytes: text (read as a CSV), a spreadsheet, or neither.

The content decides, not the name: an `.xlsx` renamed `.csv` is still read as a workbook, and a
PDF named `.csv` is refused with what it looks like instead of a screen of mojibake headers.
Cheap on purpose (the CLI calls it before anything starts): a few kilobytes for a text file, the
zip directory or the first OLE directory sector for an Office file; nothing heavy is imported.
"""

from __future__ import annotations

import codecs
import io
import struct
from os import PathLike
from pathlib import Path
from typing import Literal

from callerid.ingest.decode import BOMS, read_bytes, utf16_guess
from callerid.ingest.models import IngestInputError

InputKind = Literal["text", "xlsx", "xlsb", "xls", "ods"]
SPREADSHEETS: frozenset[str] = frozenset({"xlsx", "xlsb", "xls", "ods"})

_HEAD = 8192
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Signatures no CSV header can start with.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png image"),
    (b"\xff\xd8\xff", "jpeg image"),
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"Rar!\x1a\x07", "rar archive"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x7fELF", "executable (ELF)"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"{\\rtf", "rtf document"),
    (b"<?xml", "xml"),
    (b"\x00\x00\x00\x0cjP  ", "jpeg 2000 image"),
)
# Short signatures: only believed when the content is not text anyway.
_WEAK_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "executable (Windows)"),
    (b"BZh", "bzip2"),
    (b"GIF8", "gif image"),
    (b"ID3", "mp3 audio"),
    (b"OggS", "ogg media"),
    (b"RIFF", "riff media (wav/avi/webp)"),
    (b"PAR1", "parquet"),
)
# C0 control bytes that text does not hold (tab, newlines, form feed and Ctrl-Z EOF do occur).
_CONTROLS = bytes(b for b in range(32) if b not in b"\t\n\r\x0b\x0c\x1a")
_ODF_SPREADSHEET = b"application/vnd.oasis.opendocument.spreadsheet"


def sniff_input(path: str | PathLike[str]) -> InputKind:
    """`text` for a file to read as a CSV, or its spreadsheet format (`xlsx` also for .xlsm,
    `xlsb`, `xls`, `ods`). Raises `IngestInputError` for a missing or unreadable file and for
    any other content: "this is not a CSV or spreadsheet file (looks like: pdf)"."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            head = handle.read(_HEAD)
    except OSError:
        read_bytes(file)  # raises the ingest's own message for the same failure
        raise
    return sniff_head(head, file)


def sniff_head(head: bytes, source: Path | bytes, *, path: str = "") -> InputKind:
    """As `sniff_input`, from the file's first bytes (at least 8 KB when it is longer) and the
    file itself (its path, or all its bytes) for a look inside a zip or OLE container; `path`
    names the file in errors (default: `source` when it is a path)."""
    path = path or (str(source) if isinstance(source, Path) else "")
    if head.startswith(_ZIP):
        return _zip_kind(source, path)
    if head.startswith(_OLE):
        return _ole_kind(head, source, path)
    for magic, name in _MAGIC:
        if head.startswith(magic):
            raise _not_tabular(name, path)
    if _is_text(head):
        return "text"
    name = next((name for magic, name in _WEAK_MAGIC if head.startswith(magic)), "binary data")
    raise _not_tabular(name, path)


def _not_tabular(looks_like: str, path: str) -> IngestInputError:
    return IngestInputError(
        f"this is not a CSV or spreadsheet file (looks like: {looks_like})", path=path
    )


def _is_text(head: bytes) -> bool:
    if any(head.startswith(bom) for bom, _ in BOMS) or utf16_guess(head):
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return True  # NULs and all: a UTF-8 file is read as one (the rows say what is wrong)
    except UnicodeDecodeError:
        pass
    # A legacy code page (cp1252, latin-1) holds no control bytes; binary data is full of them.
    # A first line without any (a header) is text whatever follows: the rows will say.
    first_line = head.lstrip(b"\r\n").split(b"\n", 1)[0]
    if len(first_line.translate(None, _CONTROLS)) == len(first_line):
        return True
    controls = len(head) - len(head.translate(None, _CONTROLS))
    return controls * 100 <= len(head)


def _zip_kind(source: Path | bytes, path: str) -> InputKind:
    import zipfile  # here: it pulls in the compression modules, and CSVs never need it

    try:
        with zipfile.ZipFile(source if isinstance(source, Path) else io.BytesIO(source)) as box:
            names = set(box.namelist())
            mimetype = box.read("mimetype")[:100] if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError, KeyError, EOFError):
        raise _not_tabular("zip archive, damaged", path) from None
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "xl/workbook.bin" in names:
        return "xlsb"
    if mimetype.startswith(_ODF_SPREADSHEET):
        return "ods"
    if mimetype.startswith(b"application/vnd.oasis.opendocument."):
        kind = mimetype.rsplit(b".", 1)[-1].decode("ascii", "replace")
        raise _not_tabular(f"OpenDocument {kind}", path)
    if "word/document.xml" in names:
        raise _not_tabular("Word document", path)
    if "ppt/presentation.xml" in names:
        raise _not_tabular("PowerPoint presentation", path)
    raise _not_tabular("zip archive", path)


def _ole_kind(head: bytes, source: Path | bytes, path: str) -> InputKind:
    """An OLE2 compound file: a workbook (xls) or another Office file, by its first directory
    entries. Anything unrecognised is left to the spreadsheet reader to say."""
    names = _ole_names(head, source)
    if "EncryptedPackage" in names:
        raise IngestInputError(
            "the file is password-protected (an encrypted Office file); "
            "save a copy without a password",
            path=path,
        )
    if "WordDocument" in names:
        raise _not_tabular("Word document (.doc)", path)
    if "PowerPoint Document" in names:
        raise _not_tabular("PowerPoint presentation (.ppt)", path)
    return "xls"


def _ole_names(head: bytes, source: Path | bytes) -> set[str]:
    if len(head) < 0x34:
        return set()
    (sector_shift,) = struct.unpack_from("<H", head, 0x1E)
    (first_directory_sector,) = struct.unpack_from("<I", head, 0x30)
    if not 7 <= sector_shift <= 16:
        return set()
    size = 1 << sector_shift
    offset = (first_directory_sector + 1) * size
    if isinstance(source, Path):
        try:
            with source.open("rb") as handle:
                handle.seek(offset)
                sector = handle.read(size)
        except OSError:
            return set()
    else:
        sector = source[offset : offset + size]
    names = set()
    for start in range(0, len(sector) - 127, 128):  # 128-byte entries, UTF-16-LE names
        (length,) = struct.unpack_from("<H", sector, start + 64)
        if 2 <= length <= 64:
            names.add(sector[start : start + length - 2].decode("utf-16-le", "replace"))
    return names
