"""Exact JSON reading for the JSON channels (Shopify, Amazon SP-API): numbers kept as the text sent, typed
access with JSON-pointer messages, file- and record-level problems, exact decimal sums."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import Any

from som_pipeline import money
from som_pipeline.ingest.common import DecodeError, Rejection, decode_text, jtext

FILE_RECORD_ID = "(file)"
MAX_RAW_CHARS = 1_000_000  # raw text kept for a file-level rejection


class JNum(str):
    """A JSON number, kept as the exact text sent (a ``str``, so ``jtext`` and friends just work)."""

    __slots__ = ()


def load_json_exact(text: str) -> Any:
    """``json.loads`` keeping numbers as the exact text sent: they are :class:`JNum`, so that
    :func:`dump_json` can write them back unquoted."""
    return json.loads(text, parse_float=JNum, parse_int=JNum)


def dump_json(v: Any) -> str:
    """Compact JSON text (``ensure_ascii=False``) of a document read by :func:`load_json_exact`.

    Iterative (no recursion limit), numbers written back exactly as they were sent.
    """
    out: list[str] = []
    stack: list[Any] = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, _Lit):
            out.append(x.text)
        elif isinstance(x, JNum):
            out.append(str.__str__(x))
        elif isinstance(x, dict):
            parts: list[Any] = [_Lit("}")]
            items = list(x.items())
            for i in range(len(items) - 1, -1, -1):
                k, val = items[i]
                parts.append(val)
                parts.append(_Lit(("," if i else "") + json.dumps(str(k), ensure_ascii=False) + ":"))
            parts.append(_Lit("{"))
            stack.extend(parts)
        elif isinstance(x, list):
            parts = [_Lit("]")]
            for i in range(len(x) - 1, -1, -1):
                parts.append(x[i])
                if i:
                    parts.append(_Lit(","))
            parts.append(_Lit("["))
            stack.extend(parts)
        else:
            out.append(json.dumps(x, ensure_ascii=False))
    return "".join(out)


class _Lit:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class FileProblem(Exception):
    """A file-level problem: the whole file is one rejected record."""

    def __init__(
        self,
        reason_code: str,
        message: str,
        location: str = "whole file",
        raw: str | None = None,
        encoding: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.location = location
        self.raw = raw
        self.encoding = encoding

    def rejection(self) -> Rejection:
        return Rejection(FILE_RECORD_ID, "file", self.location, self.reason_code, self.message, self.raw)


class RecordProblem(Exception):
    """A record-level structure problem (raised while reading one record)."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


def _raw_bytes(data: bytes) -> str:
    """Printable rendering of bytes that are not text (for BAD_ENCODING rows)."""
    head = data[:4096]
    text = head.decode("utf-8", errors="backslashreplace")
    text = "".join(ch if (ch >= " " or ch in "\t\r\n") else f"\\x{ord(ch):02x}" for ch in text)
    return text + (f"... ({len(data):,} bytes)" if len(data) > len(head) else "")


def read_json_document(data: bytes) -> tuple[Any, str, str]:
    """Decode and parse a JSON file. Returns ``(document, text, encoding)``; raises :class:`FileProblem`."""
    try:
        text, encoding = decode_text(data)
    except DecodeError as e:
        raw = _raw_bytes(data) if e.reason_code == "BAD_ENCODING" else (data.decode("latin-1") or None)
        raise FileProblem(e.reason_code, e.message, raw=raw) from None
    raw = text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + f"... ({len(text):,} characters)"
    try:
        doc = load_json_exact(text)
    except json.JSONDecodeError as e:
        # "Unterminated string" is only raised when the input ends inside a string
        at_end = not text[e.pos:].strip() or e.msg.startswith("Unterminated string")
        hint = " (the file ends here: it looks truncated)" if at_end else ""
        raise FileProblem(
            "INVALID_JSON",
            f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}{hint}",
            location=f"line {e.lineno}, column {e.colno}",
            raw=raw,
            encoding=encoding,
        ) from None
    except RecursionError:
        raise FileProblem(
            "INVALID_JSON", "JSON nested too deeply to be an order document", raw=raw, encoding=encoding
        ) from None
    return doc, text, encoding


def kind_of(v: Any) -> str:
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, JNum):
        return "a number"
    if isinstance(v, str):
        return "a text"
    if isinstance(v, bool):
        return "a boolean"
    if v is None:
        return "null"
    return "a number"


def get_obj(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    """``parent[key]`` as an object (absent/null -> ``{}``); anything else is a structure problem."""
    v = parent.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{path}/{key} is {kind_of(v)}, expected an object")
    return v


def get_list(parent: dict[str, Any], key: str, path: str) -> list[Any]:
    """``parent[key]`` as a list (absent/null -> ``[]``)."""
    v = parent.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{path}/{key} is {kind_of(v)}, expected a list")
    return v


def get_objs(parent: dict[str, Any], key: str, path: str) -> list[dict[str, Any]]:
    """``parent[key]`` as a list of objects."""
    out = get_list(parent, key, path)
    for i, v in enumerate(out):
        if not isinstance(v, dict):
            raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{path}/{key}/{i} is {kind_of(v)}, expected an object")
    return out


def get_text(parent: dict[str, Any], key: str, path: str) -> str | None:
    """``parent[key]`` as text exactly as sent ('' and null -> None); an object or list is a structure problem."""
    v = parent.get(key)
    if isinstance(v, dict | list):
        raise RecordProblem("UNSUPPORTED_DOCUMENT", f"{path}/{key} is {kind_of(v)}, expected a value")
    return jtext(v)


_DECIMAL = re.compile(money.DECIMAL_RE)


def decimal_sum(
    values: Sequence[str | None], minus: Sequence[str | None] = (), scale: int = money.MONEY_SCALE
) -> str | None:
    """Exact ``sum(values) - sum(minus)`` of decimal texts (None ignored; no values at all -> None).

    A value that is not a plain decimal with at most ``scale`` places is returned *as is* instead of the
    sum: the normaliser then rejects the field with that text (validation stays in ``normalise``).
    """
    terms = [(v, 1) for v in values if v is not None] + [(v, -1) for v in minus if v is not None]
    if not any(sign == 1 for _, sign in terms):
        return None
    for v, _ in terms:
        t = v.strip()
        if not _DECIMAL.match(t) or len(t.partition(".")[2].rstrip("0")) > scale:
            return v
    with localcontext(prec=max(len(v) for v, _ in terms) + 30):  # exact: no rounding of long inputs
        total = sum((Decimal(v.strip()) * sign for v, sign in terms), Decimal(0))
    return format(total, "f")
