"""Call detail records from PBXes, read into one normalised :class:`Cdr`.

Formats (:data:`FORMATS`): ``json`` (the generic JSON CDR), ``asterisk-csv``
(``cdr_csv`` rows), ``freeswitch-json`` (``mod_json_cdr``) and ``twilio`` (a voice
status callback).  Everything here is pure: no I/O beyond reading the file handed to
:func:`iter_file`, no Redis.

* :func:`parse` reads a request body: one entry per record, in order, each a
  :class:`Cdr` or the :class:`CdrError` that record earned.  It raises
  :class:`CdrError` (field ``format`` or ``body``) only when the body as a whole cannot
  be read.  :class:`CdrNotFinal` entries (an interim Twilio status, and its subclass
  :class:`CdrIgnored`: a FreeSWITCH B leg, an internal call) are to be acknowledged and
  not stored.
* :func:`iter_file` streams a file for the bulk importer: CSV row by row, JSON lines
  line by line and a JSON array element by element, in bounded memory.

JSON bodies may be one object, an array of objects, ``{"calls": [...]}``, or JSON lines.
Unless a format is forced, each JSON record is read by its shape: an object with
``variables`` is a ``mod_json_cdr`` record, anything else a generic one.
"""

from __future__ import annotations

import codecs
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .asterisk import AsteriskColumns, asterisk_columns, iter_csv, parse_asterisk_row
from .detect import FORMATS, detect_format, file_format
from .freeswitch import decode_body, object_pairs, parse_freeswitch
from .generic import parse_generic
from .record import Cdr, CdrError, CdrIgnored, CdrNotFinal, ParseContext
from .twilio import parse_twilio

__all__ = [
    "FORMATS",
    "AsteriskColumns",
    "Cdr",
    "CdrError",
    "CdrIgnored",
    "CdrNotFinal",
    "ParseContext",
    "asterisk_columns",
    "detect_format",
    "iter_file",
    "parse",
    "parse_asterisk_row",
    "parse_freeswitch",
    "parse_generic",
    "parse_record",
    "parse_twilio",
]

Result = Cdr | CdrError

#: A single JSON record larger than this is refused rather than buffered further.
MAX_RECORD_CHARS = 8 << 20
_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"


def _check_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise CdrError("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")


def parse_record(value: Any, ctx: ParseContext, fmt: str | None = None) -> Result:
    """One decoded JSON (or form) record → :class:`Cdr` or its :class:`CdrError`."""
    if isinstance(value, CdrError):  # a record the reader could not even decode
        return value
    try:
        if fmt == "freeswitch-json" or (
            fmt is None and isinstance(value, dict) and "variables" in value
        ):
            return parse_freeswitch(value, ctx)
        if fmt == "twilio":
            if not isinstance(value, Mapping):
                raise CdrError("record", "a Twilio status callback is a set of form fields")
            return parse_twilio({str(k): str(v) for k, v in value.items()}, ctx)
        return parse_generic(value, ctx)
    except CdrError as exc:
        return exc


def _expand(doc: Any) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("calls"), list):
        return list(doc["calls"])
    return [doc]


def _decode_json_text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CdrError("body", f"not UTF-8 (byte {exc.start})") from None


def parse(
    body: bytes, content_type: str, ctx: ParseContext, fmt: str | None = None
) -> list[Cdr | CdrError]:
    """A request body → one :class:`Cdr` or :class:`CdrError` per record, in order.

    ``fmt`` forces a format; otherwise :func:`detect_format` decides.  Raises
    :class:`CdrError` when the body as a whole is unreadable (unknown format, empty,
    not UTF-8 JSON, broken JSON).
    """
    _check_format(fmt)
    if not body.strip():
        raise CdrError("body", "is empty")
    kind = fmt or detect_format(content_type, body)

    if kind == "asterisk-csv":
        text = body.decode("utf-8-sig", "replace")
        return [r for _, r in iter_csv(io.StringIO(text, newline=""), ctx)]

    if kind == "twilio":
        stripped = body.lstrip()
        if stripped[:1] == b"{":
            return [parse_record(r, ctx, "twilio") for r in _json_values(body, None)]
        return [_twilio_form(body.decode("utf-8", "replace"), ctx)]

    if kind == "freeswitch-json":
        body = decode_body(body, content_type)
    by_shape = None if fmt is None else kind
    hook = object_pairs if b'"callflow"' in body else None
    return [parse_record(r, ctx, by_shape) for r in _json_values(body, hook)]


def _twilio_form(text: str, ctx: ParseContext) -> Result:
    from urllib.parse import parse_qsl

    form: dict[str, str] = {}
    for key, value in parse_qsl(text.strip(), keep_blank_values=True):
        form.setdefault(key, value)
    try:
        return parse_twilio(form, ctx)
    except CdrError as exc:
        return exc


def _json_values(body: bytes, hook: Callable[..., Any] | None) -> list[Any]:
    """Records of a JSON body: an object, an array, ``{"calls": []}`` or JSON lines."""
    text = _decode_json_text(body)
    try:
        doc = json.loads(text, object_pairs_hook=hook)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise CdrError("body", f"invalid JSON: {exc}") from None
        chunks = iter((text,))
        return [v for _, v in _iter_json(lambda: next(chunks, ""), hook)]
    if not isinstance(doc, dict | list):
        raise CdrError("body", "must be a JSON object, an array of objects or JSON lines")
    return _expand(doc)


# ------------------------------------------------------------------ files


class _Prefixed(io.RawIOBase):
    """The bytes already read to sniff the format, then the rest of the file."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if len(self._head):
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        if not isinstance(data, bytes | bytearray):
            raise TypeError("iter_file needs a file opened in binary mode")
        n = len(data)
        view[:n] = data
        return n


def iter_file(
    source: str | os.PathLike[str] | IO[bytes], ctx: ParseContext, fmt: str | None = None
) -> Iterator[tuple[int, Cdr | CdrError]]:
    """Streams a CDR file: ``(number, Cdr | CdrError)`` per record, in file order.

    ``number`` is the line where the record starts for CSV and JSON lines, and the
    1-based position for a JSON array (or ``{"calls": [...]}``).  The format comes from
    ``fmt``, else from the file suffix and first bytes (:func:`file_format`); an unknown
    one raises ``CdrError("format", …)`` before anything is yielded.  Asterisk CSV, JSON
    lines and JSON arrays are read in bounded memory; a file handle is not closed.
    """
    _check_format(fmt)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        with path.open("rb") as fh:
            yield from _iter_handle(fh, ctx, fmt, path.suffix)
    else:
        name = getattr(source, "name", "")
        yield from _iter_handle(
            source, ctx, fmt, Path(name).suffix if isinstance(name, str) else ""
        )


def _iter_handle(
    fh: IO[bytes], ctx: ParseContext, fmt: str | None, suffix: str
) -> Iterator[tuple[int, Result]]:
    head = fh.read(65536)
    if not isinstance(head, bytes | bytearray):
        raise TypeError("iter_file needs a path or a file opened in binary mode")
    head = bytes(head)
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    kind = fmt or file_format(suffix, head)
    raw = io.BufferedReader(_Prefixed(head, fh), buffer_size=_CHUNK)
    json_like = head.lstrip()[:1] in (b"{", b"[")

    if kind == "asterisk-csv" or (kind == "twilio" and not json_like):
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        if kind == "asterisk-csv":
            yield from iter_csv(text, ctx)
        else:  # one form-encoded callback per line
            for n, line in enumerate(text, 1):
                if line.strip():
                    yield n, _twilio_form(line, ctx)
        return

    hook = object_pairs if kind == "freeswitch-json" or b'"callflow"' in head else None
    yield from _iter_records(_iter_json(_reader(raw), hook), ctx, fmt)


def _reader(raw: IO[bytes]) -> Callable[[], str]:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def read() -> str:
        while True:
            chunk = raw.read(_CHUNK)
            text = decoder.decode(chunk, final=not chunk)
            if text or not chunk:
                return text

    return read


def _iter_records(
    values: Iterable[tuple[int, Any]], ctx: ParseContext, fmt: str | None
) -> Iterator[tuple[int, Result]]:
    for n, value in values:
        yield n, parse_record(value, ctx, fmt)


_WS = frozenset(" \t\r\n")


def _iter_json(
    read: Callable[[], str], hook: Callable[..., Any] | None
) -> Iterator[tuple[int, Any]]:
    """Records of a JSON text read in chunks, each ``(number, value)``.

    A top-level array yields its elements (numbered 1, 2, …); otherwise a sequence of
    top-level values (JSON lines, or objects one after another) yields each value
    numbered by the line it starts on, arrays and ``{"calls": [...]}`` expanded.  A
    syntax error yields ``(number, CdrError)``: in an array it ends the stream, in a
    sequence reading resumes at the next line that opens a value.
    """
    decoder = json.JSONDecoder(object_pairs_hook=hook)
    buf = ""
    pos = 0
    eof = False
    line = 1

    def more() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        chunk = read()
        if not chunk:
            eof = True
            return False
        buf = buf[pos:] + chunk
        pos = 0
        return True

    def skip_ws() -> bool:
        nonlocal pos, line
        while True:
            n = len(buf)
            while pos < n and buf[pos] in _WS:
                if buf[pos] == "\n":
                    line += 1
                pos += 1
            if pos < n:
                return True
            if not more():
                return False

    def value() -> tuple[Any, int]:
        """The value at ``pos`` and the number of line breaks inside it."""
        nonlocal pos
        while True:
            try:
                obj, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError:
                if eof or len(buf) - pos > MAX_RECORD_CHARS or not more():
                    raise
                continue
            if end == len(buf) and more():
                continue  # a number at the very end of a chunk may go on in the next
            breaks = buf.count("\n", pos, end)
            pos = end
            return obj, breaks

    if not skip_ws():
        return
    if buf[pos] == "[":
        pos += 1
        index = 0
        while True:
            if not skip_ws():
                yield index + 1, CdrError("body", "the JSON array is not closed")
                return
            if buf[pos] == "]":
                pos += 1
                if skip_ws():
                    yield index + 1, CdrError("body", "unexpected data after the JSON array")
                return
            if index:
                if buf[pos] != ",":
                    yield index + 1, CdrError("body", f"expected ',' after element {index}")
                    return
                pos += 1
                if not skip_ws():
                    yield index + 1, CdrError("body", "the JSON array is not closed")
                    return
            index += 1
            try:
                yield index, value()[0]
            except json.JSONDecodeError as exc:
                yield index, CdrError("body", f"invalid JSON in element {index}: {exc.msg}")
                return
        return

    count = 0
    while skip_ws():
        start_line = line
        try:
            obj, breaks = value()
        except json.JSONDecodeError as exc:
            yield start_line, CdrError("body", f"invalid JSON on line {start_line}: {exc.msg}")
            # resume at the next line that opens a value
            while True:
                nl = buf.find("\n", pos)
                if nl < 0:
                    pos = len(buf)
                    if not more():
                        return
                    continue
                pos = nl + 1
                line += 1
                if pos >= len(buf) and not more():
                    return
                if buf[pos : pos + 1] in ("{", "["):
                    break
            continue
        line += breaks
        items = _expand(obj)
        if len(items) == 1 and items[0] is obj:
            count += 1
            yield start_line, obj
        else:
            for item in items:
                count += 1
                yield count, item
