"""Bytes to text: encoding by BOM, by a named codec, or by trying the usual suspects in order.

Spreadsheet exports are UTF-8 (with or without BOM), UTF-16 with BOM ("Unicode text" in Excel),
or the Windows code page of the machine that saved them. We do not guess beyond that: cp1252
and then latin-1 accept any byte, so an undeclared legacy file is always read, and the encoding
that was used is reported so a person can name the right one with `--encoding`.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from callerid.ingest.models import IngestInputError, IngestOptionError

BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_FALLBACKS = ("utf-8", "cp1252", "latin-1")
DELIMITERS = (",", ";", "\t", "|")
# A file whose header has none of DELIMITERS has one column; this never occurs in text, so a
# comma inside a number ("4,155,552,671") stays part of the value.
SINGLE_COLUMN = "\x1f"


def check_encoding(encoding: str | None) -> str | None:
    """The codec's canonical name, or an error a person can act on."""
    if encoding is None:
        return None
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise IngestOptionError(f"unknown encoding {encoding!r}") from None
    # rot13, base64, hex, zlib, bz2, uu, quopri: codecs that map bytes to bytes (or str to
    # str), which `bytes.decode` refuses with a LookupError.
    if not getattr(info, "_is_text_encoding", True):
        raise IngestOptionError(
            f"{encoding!r} is not a text encoding; name the file's character encoding "
            "(utf-8, cp1252, latin-1, utf-16, ...)"
        )
    return info.name


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise IngestInputError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise IngestInputError("is a directory, not a CSV file", path=str(path)) from None
    except OSError as exc:
        raise IngestInputError(f"cannot read the file: {exc.strerror}", path=str(path)) from None


def decode(data: bytes, encoding: str | None, *, path: str = "") -> tuple[str, str]:
    """Return (text, encoding used). A named encoding is used as given (a BOM is still dropped)."""
    if encoding is not None:
        return _decode_as(data, check_encoding(encoding) or encoding, path=path), encoding
    for bom, name in BOMS:
        if data.startswith(bom):
            return _decode_as(data, name, path=path), name
    for name in (*utf16_guess(data), *_FALLBACKS):
        try:
            return _strip_bom(data.decode(name)), name
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte string")  # pragma: no cover


def _decode_as(data: bytes, encoding: str, *, path: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise IngestInputError(
            f"not valid {encoding} at byte {exc.start} ({exc.reason}); "
            "name the file's encoding with --encoding",
            path=path,
        ) from None
    except ValueError as exc:  # idna, punycode, undefined: UnicodeError without a position
        raise IngestInputError(
            f"cannot be read as {encoding} ({exc}); name the file's encoding with --encoding",
            path=path,
        ) from None
    return _strip_bom(_without_lone_surrogates(text))


def _without_lone_surrogates(text: str) -> str:
    """A lone surrogate (`\\ud800` read with unicode_escape, or utf-7) can be held in a str but
    written in no report: it is written back as the escape it came from. (The encodings tried
    without being named never produce one.)"""
    if text.isascii():  # O(1): CPython knows
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def utf16_guess(data: bytes) -> tuple[str, ...]:
    """UTF-16 without a BOM: ASCII text leaves a NUL in every other byte, and (nearly) none in
    the bytes between. A file that is padded or sprinkled with NULs has them on both sides."""
    head = data[:4096]
    if len(head) < 4 or head.count(0) < len(head) // 4:
        return ()
    even_nuls = head[0::2].count(0)
    odd_nuls = head[1::2].count(0)
    high, low = max(even_nuls, odd_nuls), min(even_nuls, odd_nuls)
    if high * 2 < len(head) // 2 or low * 8 > high:
        return ()
    return ("utf-16-le",) if odd_nuls > even_nuls else ("utf-16-be",)


def detect_delimiter(header_line: str) -> str:
    """The candidate that splits the header into the most cells (ties: the earlier candidate)."""
    best, best_count = SINGLE_COLUMN, 0
    for candidate in DELIMITERS:
        count = _count_outside_quotes(header_line, candidate)
        if count > best_count:
            best, best_count = candidate, count
    return best


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == char and not quoted:
            count += 1
    return count
