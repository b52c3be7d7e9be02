"""Asterisk ``cdr_csv`` rows (``/var/log/asterisk/cdr-csv/Master.csv``).

Column order, as ``cdr_csv`` writes it (no header line)::

    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
    start, answer, end, duration, billsec, disposition, amaflags,
    [uniqueid]  [userfield]  [peeraccount, linkedid, sequence]

The bracketed groups follow ``cdr.conf`` ``[csv]``: ``loguniqueid``, ``loguserfield``
and ``newcdrcolumns``, all ``no`` by default, so a row has 16-21 columns.  A 17- (or
20-) column row has one of uniqueid/userfield; it is read as ``uniqueid`` when the
value looks like one (``1764000902.26`` or ``pbx1-1764000902.26``), else as
``userfield``.  A first row that names the columns (``src``, ``dst``, ``start`` …) is
taken as a header and maps the columns by name instead, so ``cdr_custom`` files and
database exports with a header line work too (``calldate`` is read as ``start``).

Times are the PBX's local ``YYYY-MM-DD HH:MM:SS`` in the site's timezone; an
unanswered call has an empty ``answer``.  (A PBX with ``usegmtime=yes`` writes UTC:
read its rows with a :class:`ParseContext` whose timezone is UTC.)

Around a DST change a local time can be ambiguous (the repeated hour): the reading
of ``start``/``answer``/``end`` that agrees best with the row's own ``duration`` and
``billsec`` wins, and on a tie the earlier instant (PEP 495 ``fold=0``).  A local
time that does not exist (the skipped hour) is read with the offset in force before
the change (also ``fold=0``).

Direction: a row is outbound when its ``dcontext`` contains ``outbound`` or
``from-internal`` (FreePBX puts calls dialled from extensions there), else inbound.
An outbound row is read with ``dst`` as the called party whatever ``asterisk_called``
says (that setting names where the PBX records the *dialled DID* of inbound calls);
an outbound row whose ``dst`` is not a phone number is an internal call between
extensions and is answered with :class:`CdrIgnored`.

The call id is ``uniqueid`` when the row has one, else ``ast-`` and a stable hash of
(src, dst, start, channel), so importing the same file twice gives the same ids.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from .record import (
    MAX_EPOCH,
    MIN_EPOCH,
    Cdr,
    CdrError,
    CdrIgnored,
    ParseContext,
    caller_number,
    check_call_id,
    check_order,
    clid_number,
    e164,
    make,
)

BASE_COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
NEW_COLUMNS = ("peeraccount", "linkedid", "sequence")

DISPOSITIONS = {
    "ANSWERED": "answered",
    "NO ANSWER": "missed",
    "BUSY": "busy",
    "FAILED": "failed",
    "CONGESTION": "failed",
}

# Header names other tools use for the same cdr fields.
_ALIASES = {
    "calldate": "start",
    "callerid": "clid",
    "source": "src",
    "destination": "dst",
    "answertime": "answer",
    "endtime": "end",
    "starttime": "start",
}


@dataclass(frozen=True, slots=True)
class AsteriskColumns:
    """Where each cdr field sits in a row (-1: the layout does not have it)."""

    names: tuple[str, ...]
    index: Mapping[str, int] = field(repr=False)
    width: int = field(repr=False)
    src: int = field(repr=False)
    dst: int = field(repr=False)
    dcontext: int = field(repr=False)
    clid: int = field(repr=False)
    channel: int = field(repr=False)
    start: int = field(repr=False)
    answer: int = field(repr=False)
    end: int = field(repr=False)
    duration: int = field(repr=False)
    billsec: int = field(repr=False)
    disposition: int = field(repr=False)
    uniqueid: int = field(repr=False)


def _columns(names: Sequence[str]) -> AsteriskColumns:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    g = index.get
    return AsteriskColumns(
        tuple(names),
        index,
        max(index.values(), default=-1) + 1,
        g("src", -1),
        g("dst", -1),
        g("dcontext", -1),
        g("clid", -1),
        g("channel", -1),
        g("start", -1),
        g("answer", -1),
        g("end", -1),
        g("duration", -1),
        g("billsec", -1),
        g("disposition", -1),
        g("uniqueid", -1),
    )


def _standard_layouts() -> dict[int, tuple[AsteriskColumns, AsteriskColumns]]:
    """Width -> (layout if column 17 is a uniqueid, layout if it is not).

    Only 17 and 20 columns are ambiguous (one of uniqueid/userfield); for the other
    widths both entries are the same layout.
    """
    with_uid: dict[int, AsteriskColumns] = {}
    without: dict[int, AsteriskColumns] = {}
    for extra in ((), ("uniqueid",), ("userfield",), ("uniqueid", "userfield")):
        for new in ((), NEW_COLUMNS):
            lay = _columns(BASE_COLUMNS + extra + new)
            if "uniqueid" in extra or extra == ():
                with_uid[lay.width] = lay
            if "uniqueid" not in extra or "userfield" in extra:
                without[lay.width] = lay
    return {w: (with_uid[w], without[w]) for w in with_uid}


_LAYOUTS = _standard_layouts()


def layout_for(row: Sequence[str]) -> AsteriskColumns:
    """The standard cdr_csv layout for a header-less row of 16-21 columns."""
    pair = _LAYOUTS.get(len(row))
    if pair is None:
        raise CdrError("row", f"a cdr_csv row has 16 to 21 columns, this one has {len(row)}")
    with_uid, without = pair
    if with_uid is without or _looks_like_uniqueid(row[16]):
        return with_uid
    return without


def _looks_like_uniqueid(value: str) -> bool:
    sec, dot, seq = value.rpartition("-")[2].partition(".")
    return bool(dot) and len(sec) >= 9 and sec.isdigit() and seq.isdigit()


def asterisk_columns(header: Sequence[str]) -> AsteriskColumns | None:
    """A header row (``src``, ``dst``, ``start``, ``disposition``…) → its layout; None if
    the row is data, not a header."""
    names = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    if not {"src", "dst", "start", "disposition"} <= set(names):
        return None
    return _columns(names)


# ------------------------------------------------------------------ local times

_NAIVE_EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=1 << 14)
def _days(text: str) -> int:
    return date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL


@lru_cache(maxsize=1 << 17)
def _hour_offset(tz: ZoneInfo, hour: int) -> int | None:
    """The zone's UTC offset in seconds for a whole local hour, or None when a DST
    change (gap or fold) touches that hour and each time must be looked at alone."""
    first = _NAIVE_EPOCH + timedelta(hours=hour)
    last = first + timedelta(minutes=59, seconds=59)
    offsets = {
        tz.utcoffset(first),
        tz.utcoffset(first.replace(fold=1)),
        tz.utcoffset(last),
        tz.utcoffset(last.replace(fold=1)),
    }
    if len(offsets) != 1:
        return None
    (off,) = offsets
    return None if off is None else int(off.total_seconds())


def _near_change(naive: int, tz: ZoneInfo) -> tuple[float, float | None]:
    when = _NAIVE_EPOCH + timedelta(seconds=naive)
    o0, o1 = tz.utcoffset(when), tz.utcoffset(when.replace(fold=1))
    u0 = naive - int(o0.total_seconds()) if o0 is not None else naive
    u1 = naive - int(o1.total_seconds()) if o1 is not None else naive
    if u0 == u1:
        return float(u0), None

    def exists(u: int) -> bool:
        return datetime.fromtimestamp(u, tz).replace(tzinfo=None) == when

    if exists(u0) and exists(u1):  # the repeated hour: two instants, earlier first
        return float(min(u0, u1)), float(max(u0, u1))
    return float(u0), None  # the skipped hour: fold=0 reading (offset before the change)


def local_time(text: str, tz: ZoneInfo, field: str) -> tuple[float, float | None]:
    """``YYYY-MM-DD HH:MM:SS`` local → (Unix seconds, the other reading or None).

    The second value is set only for an ambiguous time in the repeated hour of a DST
    change; the first is then the earlier instant.
    """
    if len(text) != 19:
        text = text.strip()
    if (
        len(text) != 19
        or text[4] != "-"
        or text[7] != "-"
        or text[13] != ":"
        or text[16] != ":"
        or text[10] not in " T"
    ):
        raise CdrError(field, f"{text!r} is not a 'YYYY-MM-DD HH:MM:SS' time")
    try:
        days = _days(text[:10])
        h, m, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
    except ValueError:
        raise CdrError(field, f"{text!r} is not a valid date and time") from None
    if not (0 <= h <= 23 and 0 <= m <= 59 and 0 <= s <= 59):
        raise CdrError(field, f"{text!r} is not a valid time of day")
    hour = days * 24 + h
    naive = hour * 3600 + m * 60 + s
    off = _hour_offset(tz, hour)
    if off is not None:
        out: tuple[float, float | None] = (float(naive - off), None)
    else:
        out = _near_change(naive, tz)
    if not MIN_EPOCH <= out[0] < MAX_EPOCH:
        raise CdrError(field, f"{text!r} is outside the years 2000-2099")
    return out


def _resolve(
    starts: tuple[float, float | None],
    answers: tuple[float, float | None] | None,
    ends: tuple[float, float | None] | None,
    duration: int | None,
    billsec: int | None,
) -> tuple[float, float | None, float | None]:
    """Picks the readings of ambiguous local times that fit duration/billsec best."""
    s_opts = [v for v in starts if v is not None]
    a_opts: list[float | None] = [v for v in answers if v is not None] if answers else [None]
    e_opts: list[float | None] = [v for v in ends if v is not None] if ends else [None]
    best: tuple[float, float, float | None, float | None] | None = None
    for s in s_opts:
        for e in e_opts:
            for a in a_opts:
                cost = 0.0
                if a is not None and a < s:
                    cost += 1e9
                if e is not None:
                    if e < s or (a is not None and e < a):
                        cost += 1e9
                    if duration is not None:
                        cost += abs(e - s - duration)
                    if a is not None and billsec is not None:
                        cost += abs(e - a - billsec)
                if best is None or cost < best[0]:
                    best = (cost, s, a, e)
    assert best is not None
    return best[1], best[2], best[3]


# ------------------------------------------------------------------ rows


@lru_cache(maxsize=4096)
def _outbound_context(dcontext: str) -> bool:
    low = dcontext.lower()
    return "outbound" in low or "from-internal" in low


def _seconds(row: Sequence[str], i: int, name: str) -> int | None:
    if i < 0:
        return None
    text = row[i]
    try:
        value = int(text)
    except ValueError:
        if not text.strip():
            return None
        raise CdrError(name, f"{text!r} is not a whole number of seconds") from None
    if value < 0:
        raise CdrError(name, f"{text!r} is negative")
    return value


def _synthetic_id(src: str, dst: str, start: str, channel: str) -> str:
    key = "\x1f".join((src, dst, start, channel)).encode("utf-8", "surrogatepass")
    return "ast-" + hashlib.blake2b(key, digest_size=12).hexdigest()


def parse_asterisk_row(
    row: Sequence[str], ctx: ParseContext, columns: AsteriskColumns | None = None
) -> Cdr:
    """One ``cdr_csv`` row → :class:`Cdr`; errors name the cdr_csv column.

    ``columns`` is the layout given by a header row; without it the standard
    16-21-column layout is chosen from the row's length.
    """
    cols = columns if columns is not None else layout_for(row)
    if len(row) < cols.width:
        raise CdrError("row", f"expected {cols.width} columns, got {len(row)}")

    raw_disp = row[cols.disposition]
    status = DISPOSITIONS.get(raw_disp) or DISPOSITIONS.get(raw_disp.strip().upper())
    if status is None:
        raise CdrError(
            "disposition", f"{raw_disp!r} is not ANSWERED, NO ANSWER, BUSY, FAILED or CONGESTION"
        )

    outbound = cols.dcontext >= 0 and _outbound_context(row[cols.dcontext])
    src = row[cols.src]
    if outbound:
        dst = row[cols.dst]
        called = e164(dst, ctx.country)
        if called is None:
            raise CdrIgnored("dst", f"internal call to {dst!r} (not a phone number)")
    else:
        name = ctx.asterisk_called
        i = cols.index.get(name, -1)
        if i < 0:
            raise CdrError(
                name,
                f"this cdr_csv layout ({cols.width} columns) has no "
                f"{name!r} column (see cdr.conf [csv] loguniqueid/"
                "loguserfield)",
            )
        raw = row[i]
        called = e164(raw, ctx.country) if raw else None
        if called is None:
            if not raw.strip():
                raise CdrError(name, "the called number is empty")
            raise CdrError(
                name,
                f"{raw!r} is not a possible phone number (national "
                f"numbers are read as {ctx.country or 'international'})",
            )
    if not src and cols.clid >= 0:
        src = clid_number(row[cols.clid])
    caller = caller_number(src, ctx)

    tz = ctx.timezone
    start_text = row[cols.start]
    if not start_text:
        raise CdrError("start", "is empty")
    starts = local_time(start_text, tz, "start")
    answer_text = row[cols.answer] if cols.answer >= 0 else ""
    answers = local_time(answer_text, tz, "answer") if answer_text else None
    end_text = row[cols.end] if cols.end >= 0 else ""
    ends = local_time(end_text, tz, "end") if end_text else None
    duration = _seconds(row, cols.duration, "duration")
    billsec = _seconds(row, cols.billsec, "billsec")

    started = starts[0]
    answered = answers[0] if answers is not None else None
    ended = ends[0] if ends is not None else None
    if (
        starts[1] is not None
        or (answers and answers[1] is not None)
        or (ends and ends[1] is not None)
    ):
        started, answered, ended = _resolve(starts, answers, ends, duration, billsec)
    check_order(started, answered, ended, ("answer", "end"))

    if duration is None:
        duration = int(ended - started) if ended is not None else 0
    if billsec is None:
        billsec = int(ended - answered) if ended is not None and answered is not None else 0

    uid = row[cols.uniqueid] if cols.uniqueid >= 0 else ""
    if uid:
        call_id = check_call_id(uid, "uniqueid")
    else:
        call_id = _synthetic_id(
            row[cols.src], row[cols.dst], start_text, row[cols.channel] if cols.channel >= 0 else ""
        )
    return make(
        call_id,
        "outbound" if outbound else "inbound",
        caller,
        called,
        started,
        answered,
        ended,
        status,
        duration,
        billsec,
        None,
    )


def iter_csv(lines: Iterable[str], ctx: ParseContext) -> Iterator[tuple[int, Cdr | CdrError]]:
    """Rows of a cdr_csv text → (line number where the row starts, result), lazily.

    Blank lines are skipped; a first row that names the columns is read as a header.
    """
    reader = csv.reader(lines)
    columns: AsteriskColumns | None = None
    first = True
    last_line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if reader.line_num == last_line:
                return
            yield last_line + 1, CdrError("row", f"unreadable CSV: {exc}")
            last_line = reader.line_num
            continue
        line = last_line + 1
        last_line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if first:
            first = False
            columns = asterisk_columns(row)
            if columns is not None:
                continue
        try:
            yield line, parse_asterisk_row(row, ctx, columns)
        except CdrError as exc:
            yield line, exc
