"""Step 1, prepare (streaming, 4 MiB blocks): format, encoding, line endings, line scan, header record.

The encoding is chosen like ``common.decode_text`` (UTF-8 with or without BOM, UTF-16 with BOM, else
Windows-1252, latin-1 for the five bytes cp1252 leaves undefined; binary -> ``BAD_ENCODING``; nothing but
whitespace -> ``EMPTY_FILE``), validating UTF-8 with an incremental decoder. Files that are not UTF-8, or
that contain CR line breaks, are rewritten to a UTF-8, LF-only copy under the work directory (DuckDB's
reader fails, or silently reads nothing, on mixed line endings). The same pass counts lines and finds
blank lines outside quoted fields. The header is the first non-blank record, read with Python's ``csv``.
"""

from __future__ import annotations

import codecs
import csv
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 4 << 20  # streaming read size
HEADER_PROBE = 1 << 20  # the header record must end within the first MiB

_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_NON_SPACE = re.compile(rb"[^ \t\r\n\x0b\x0c]")


@dataclass
class Source:
    """What the preparation pass learnt about the file."""

    format: str  # "csv" | "parquet"
    path: Path  # the file DuckDB reads (a link to the input, or the UTF-8/LF rewrite)
    encoding: str | None = None
    header: list[str] = field(default_factory=list)  # column names as written
    types: list[str] = field(default_factory=list)  # parquet: DuckDB column types
    lead_lines: int = 0  # blank lines before the header
    header_lines: int = 1  # physical lines of the header record
    newlines: int = 0
    ends_with_newline: bool = True
    blank_lines: list[int] = field(default_factory=list)  # physical numbers of blank lines outside quotes
    notes: dict[str, Any] = field(default_factory=dict)


class FileProblem(Exception):
    """A file-level problem: the whole file is one rejected record."""

    def __init__(self, reason_code: str, message: str, source: Source | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.source = source


def short(e: BaseException) -> str:
    """The first line of an exception's message, for a rejection message."""
    msg = str(e).strip().splitlines()
    return msg[0][:300] if msg else type(e).__name__


def blocks(path: Path, start: int = 0) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        while True:
            b = f.read(BLOCK)
            if not b:
                return
            yield b


class LineScan:
    """Counts lines and finds blank lines outside quoted fields, streaming over UTF-8/LF bytes.

    A blank line is an LF directly after an LF; it is inside a quoted field when an odd number of
    quote characters precede it (RFC 4180: quotes inside quoted fields are doubled).
    """

    def __init__(self) -> None:
        self.newlines = 0
        self.quotes = 0
        self.last = b""
        self.blank_lines: list[int] = []

    def feed(self, b: bytes) -> None:
        if not b:
            return
        hits = [0] if b[:1] == b"\n" and self.last == b"\n" else []
        p = b.find(b"\n\n")
        while p >= 0:  # b[p + 1] is an LF right after an LF: the line starting there is blank
            hits.append(p + 1)
            p = b.find(b"\n\n", p + 1)
        nl, q, prev = self.newlines, self.quotes, 0
        for h in hits:
            nl += b.count(b"\n", prev, h)
            q += b.count(b'"', prev, h)
            prev = h
            if q % 2 == 0:
                self.blank_lines.append(nl + 1)
        self.newlines += b.count(b"\n")
        self.quotes += b.count(b'"')
        self.last = b[-1:]

    def fill(self, src: Source) -> Source:
        """Copy what the scan found into ``src``."""
        src.newlines, src.blank_lines = self.newlines, self.blank_lines
        src.ends_with_newline = self.last == b"\n"
        return src


def prepare(path: Path, tmp: Path, parquet_name: bool = False) -> Source:
    """Sniff the format, choose the encoding, scan the lines and read the header (raises FileProblem)."""
    size = path.stat().st_size
    if size == 0:
        raise FileProblem("EMPTY_FILE", "the file is empty")
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(0, size - 4))
        tail = f.read(4)
    if parquet_name or path.suffix.lower() == ".parquet" or (head == b"PAR1" and tail == b"PAR1" and size >= 12):
        if head != b"PAR1":
            raise FileProblem(
                "UNREADABLE_FILE", "the file is named .parquet but is not a Parquet file (no PAR1 magic bytes)"
            )
        return Source(format="parquet", path=link(path, tmp / "input.parquet"))

    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return read_header(_rewrite(path, tmp, "utf-16"))

    bom = head.startswith(codecs.BOM_UTF8)
    scan = _scan_utf8(path, bom)
    undefined_cp1252 = scan.utf8_error is not None and any(_CP1252_UNDEFINED.search(b) for b in blocks(path))
    if not scan.non_space:
        raise FileProblem("EMPTY_FILE", "the file contains only whitespace")
    if bom and scan.utf8_error:
        raise FileProblem("BAD_ENCODING", f"the file declares utf-8-sig (BOM) but {scan.utf8_error}")
    if scan.utf8_error is None:
        encoding = "utf-8-sig" if bom else "utf-8"
    else:
        encoding = "latin-1" if undefined_cp1252 else "cp1252"
    _check_text(path, encoding)
    if encoding in ("utf-8", "utf-8-sig") and not scan.has_cr:
        src = Source(format="csv", path=link(path, tmp / "input.csv"), encoding=encoding)
        return read_header(scan.lines.fill(src))
    return read_header(_rewrite(path, tmp, encoding))


@dataclass
class _Utf8Scan:
    utf8_error: str | None  # why the bytes are not UTF-8, None when they are
    has_cr: bool
    non_space: bool
    lines: LineScan


def _scan_utf8(path: Path, bom: bool) -> _Utf8Scan:
    """One streaming pass: UTF-8 validity, CR present, anything but whitespace, lines and blank lines."""
    dec = codecs.getincrementaldecoder("utf-8")()
    utf8_error: str | None = None
    has_cr = non_space = False
    scan = LineScan()
    offset = 0
    for b in blocks(path):
        if utf8_error is None and not (b.isascii() and not dec.getstate()[0]):
            try:
                dec.decode(b)
            except UnicodeDecodeError as e:
                utf8_error = f"byte {offset + e.start} is invalid: {e.reason}"
        has_cr = has_cr or b"\r" in b
        if not non_space:
            non_space = _NON_SPACE.search(b[3:] if bom and offset == 0 else b) is not None
        scan.feed(b)
        offset += len(b)
    if utf8_error is None:
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError as e:
            utf8_error = f"the file ends inside a multi-byte character: {e.reason}"
    return _Utf8Scan(utf8_error, has_cr, non_space, scan)


def link(path: Path, target: Path) -> Path:
    """A name DuckDB can read safely (no glob characters, quotes or odd bytes in it)."""
    try:
        target.symlink_to(path.resolve())
    except OSError:
        shutil.copyfile(path, target)
    return target


def _bad_chars(text: str) -> int:
    return sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\r\n\x0c") or ch == "\ufffd")


def _not_text(bad: int, encoding: str) -> FileProblem:
    return FileProblem(
        "BAD_ENCODING",
        f"the content is not text ({bad} control/undecodable characters in the first 64 KiB, "
        f"read as {encoding}); expected UTF-8, UTF-16 with BOM or Windows-1252",
    )


def _check_text(path: Path, encoding: str) -> None:
    """decode_text's test, on the first 64 Ki characters: control characters mean 'not text'."""
    with open(path, "rb") as f:
        data = f.read(65536 * 4)
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(data)[:65536]
    bad = _bad_chars(text)
    if bad:
        raise _not_text(bad, encoding)


def _rewrite(path: Path, tmp: Path, encoding: str) -> Source:
    """Stream the file into a UTF-8 copy with LF line breaks (CRLF and lone CR become LF)."""
    out_path = tmp / "input.utf8.csv"
    dec = codecs.getincrementaldecoder(encoding)()
    scan = LineScan()
    carry_cr = False
    first = ""
    non_space = False
    with open(out_path, "wb") as out:

        def emit(text: str) -> None:
            nonlocal carry_cr, first, non_space
            if carry_cr:
                text = "\r" + text
                carry_cr = False
            if text.endswith("\r"):
                text, carry_cr = text[:-1], True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if len(first) < 65536:
                first += text[: 65536 - len(first)]
            non_space = non_space or bool(text.strip())
            b = text.encode("utf-8")
            out.write(b)
            scan.feed(b)

        offset = 0
        try:
            for b in blocks(path):
                emit(dec.decode(b))
                offset += len(b)
            emit(dec.decode(b"", final=True))
        except UnicodeDecodeError as e:
            raise FileProblem(
                "BAD_ENCODING", f"the file declares {encoding} (BOM) but byte {offset + e.start} is invalid: {e.reason}"
            ) from e
        if carry_cr:
            carry_cr = False
            emit("\n")
    first = first.lstrip("\ufeff")
    if not non_space or not first.strip():
        raise FileProblem("EMPTY_FILE", "the file contains only whitespace")
    bad = _bad_chars(first)
    if bad:
        raise _not_text(bad, encoding)
    src = scan.fill(Source(format="csv", path=out_path, encoding=encoding))
    src.notes["rewritten_to_utf8_lf"] = True
    return src


def read_header(src: Source) -> Source:
    """Read the header record (the first non-blank one) with Python's csv module."""
    with open(src.path, "rb") as f:
        probe = f.read(HEADER_PROBE)
        truncated = bool(f.read(1))
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(probe)
    text = text.lstrip("\ufeff")
    lines = text.split("\n")
    if truncated:
        lines = lines[:-1]  # the last one may be cut
    lead = 0
    while lead < len(lines) and not lines[lead].strip():
        lead += 1
    body = [ln + "\n" for ln in lines[lead:]]
    reader = csv.reader(iter(body), strict=False)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise FileProblem("UNREADABLE_FILE", f"the header row cannot be read: {e}", src) from e
    if header is None or (truncated and reader.line_num >= len(body)):
        raise FileProblem(
            "UNREADABLE_FILE",
            f"no complete header row in the first {HEADER_PROBE // 1024:,} KiB (an unterminated quote?)",
            src,
        )
    src.header = header
    src.lead_lines = lead
    src.header_lines = reader.line_num
    return src
