"""Asterisk cdr_csv: the 16-21 column layouts, local times and DST, statuses, direction."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from attribution.cdr import (
    Cdr,
    CdrError,
    CdrIgnored,
    CdrNotFinal,
    ParseContext,
    asterisk_columns,
    iter_file,
    parse,
    parse_asterisk_row,
)
from attribution.cdr.asterisk import BASE_COLUMNS, layout_for, local_time

SAMPLES = Path(__file__).parent / "samples" / "cdr"
MSK = ZoneInfo("Europe/Moscow")
KYIV = ZoneInfo("Europe/Kyiv")
RU = ParseContext("RU", MSK)
UA = ParseContext("UA", KYIV)
UA_USERFIELD = ParseContext("UA", KYIV, "userfield")
T0 = 1795511702.0  # 2026-11-24T09:15:02Z = 12:15:02 Moscow


def rows(name: str) -> list[list[str]]:
    with (SAMPLES / name).open(newline="") as fh:
        return [r for r in csv.reader(fh) if r]


def row16(**cols: str) -> list[str]:
    base = dict(zip(BASE_COLUMNS, rows("asterisk-master-16.csv")[0], strict=True))
    base.update(cols)
    return [base[c] for c in BASE_COLUMNS]


def err(row: list[str], ctx: ParseContext = RU) -> CdrError:
    with pytest.raises(CdrError) as info:
        parse_asterisk_row(row, ctx)
    return info.value


# ------------------------------------------------------------------ the samples


def test_master_16_default_layout() -> None:
    answered, no_answer, busy, failed, congestion, outbound, internal, s_ext = iter_file(
        SAMPLES / "asterisk-master-16.csv", RU
    )
    assert answered == (
        1,
        Cdr(
            call_id=answered[1].call_id,
            direction="inbound",
            caller="+79161234567",
            called="+74957000001",
            started_at=T0,
            answered_at=T0 + 7,
            ended_at=T0 + 218,
            status="answered",
            duration=218,
            billsec=211,
            recording_url=None,
        ),
    )
    assert isinstance(answered[1], Cdr) and answered[1].call_id.startswith("ast-")

    for (_, cdr), status in zip(
        (no_answer, busy, failed, congestion), ("missed", "busy", "failed", "failed"), strict=True
    ):
        assert isinstance(cdr, Cdr) and cdr.status == status
        assert cdr.answered_at is None and cdr.billsec == 0
    assert isinstance(no_answer[1], Cdr) and no_answer[1].caller == "+79031112233"
    assert isinstance(failed[1], Cdr) and failed[1].caller == ""  # "Anonymous" <anonymous>

    out = outbound[1]
    assert isinstance(out, Cdr) and out.direction == "outbound"
    assert (out.caller, out.called, out.billsec) == ("101", "+79161234567", 94)

    n, ignored = internal
    assert n == 7 and isinstance(ignored, CdrIgnored) and isinstance(ignored, CdrNotFinal)
    assert ignored.field == "dst"
    n, bad = s_ext
    assert n == 8 and type(bad) is CdrError and bad.field == "dst" and "'s'" in bad.detail


def test_master_18_uniqueid_and_userfield_did() -> None:
    got = [r for _, r in iter_file(SAMPLES / "asterisk-master-18.csv", UA_USERFIELD)]
    first, second, fold, empty = got
    assert isinstance(first, Cdr) and first.call_id == "1795511702.257"
    assert (first.caller, first.called) == ("+380501234567", "+380577000001")
    assert (first.started_at, first.answered_at, first.ended_at) == (T0, T0 + 12, T0 + 190)
    assert isinstance(second, Cdr) and second.called == "+380577000002"  # 0577000002
    assert second.status == "missed" and second.caller == "+380671112233"
    assert isinstance(fold, Cdr)
    assert isinstance(empty, CdrError) and empty.field == "userfield"
    # the same file read with the default column: dst is the queue, not a number
    plain = [r for _, r in iter_file(SAMPLES / "asterisk-master-18.csv", UA)]
    assert all(isinstance(r, CdrError) and r.field == "dst" for r in plain)


def test_master_18_dst_fold_is_resolved_by_duration() -> None:
    # 03:55:00 EEST (before clocks go back at 04:00) to 03:05:10 EET, 610 s later
    fold = rows("asterisk-master-18.csv")[2]
    assert (fold[9], fold[11], fold[12]) == ("2026-10-25 03:55:00", "2026-10-25 03:05:10", "610")
    cdr = parse_asterisk_row(fold, UA_USERFIELD)
    start = datetime(2026, 10, 25, 0, 55, tzinfo=UTC).timestamp()
    assert (cdr.started_at, cdr.answered_at, cdr.ended_at) == (start, start + 10, start + 610)


def test_master_17_uniqueid_with_system_name() -> None:
    first, second = (r for _, r in iter_file(SAMPLES / "asterisk-master-17.csv", RU))
    assert isinstance(first, Cdr) and first.call_id == "pbx1-1795511702.26"
    assert isinstance(second, Cdr) and second.call_id == "pbx1-1795512302.27"


def test_master_21_new_cdr_columns() -> None:
    r = rows("asterisk-master-21.csv")
    assert len(r[0]) == 21
    a, b = (parse_asterisk_row(x, RU) for x in r)
    assert a.call_id == b.call_id == "1795511702.26"  # two legs of one call share it
    assert (a.status, b.status) == ("answered", "missed")


def test_header_row_maps_columns_by_name() -> None:
    ((n, cdr),) = list(iter_file(SAMPLES / "asterisk-header.csv", RU))
    assert n == 2 and isinstance(cdr, Cdr)
    assert (cdr.call_id, cdr.called, cdr.started_at, cdr.ended_at) == (
        "1795511702.26",
        "+74957000001",
        T0,
        T0 + 218,
    )


# ------------------------------------------------------------------ layouts


@pytest.mark.parametrize(
    ("extra", "width", "uid", "field"),
    [
        ([], 16, False, False),
        (["1795511702.26"], 17, True, False),
        (["+74957000009"], 17, False, True),
        (["1795511702.26", "+74957000009"], 18, True, True),
        (["", "1795511702.26", "3"], 19, False, False),
        (["1795511702.26", "", "1795511702.26", "3"], 20, True, False),
        (["74957000009", "", "1795511702.26", "3"], 20, False, True),
        (["1795511702.26", "74957000009", "", "1795511702.26", "3"], 21, True, True),
    ],
)
def test_layouts(extra: list[str], width: int, uid: bool, field: bool) -> None:
    row = row16() + extra
    cols = layout_for(row)
    assert cols.width == width
    assert (cols.uniqueid >= 0) is uid and ("userfield" in cols.names) is field
    cdr = parse_asterisk_row(row, RU)
    assert (cdr.call_id == "1795511702.26") is uid
    if field:
        assert (
            parse_asterisk_row(row, ParseContext("RU", MSK, "userfield")).called == "+74957000009"
        )
    else:
        assert err(row, ParseContext("RU", MSK, "userfield")).field == "userfield"


@pytest.mark.parametrize("width", [0, 1, 15, 22])
def test_wrong_column_count(width: int) -> None:
    assert err((row16() * 2)[:width]).field == "row"


def test_asterisk_called_may_name_any_column() -> None:
    row = row16(accountcode="74957000042", dst="s")
    assert parse_asterisk_row(row, ParseContext("RU", MSK, "accountcode")).called == "+74957000042"
    assert err(row, ParseContext("RU", MSK, "nosuch")).field == "nosuch"


def test_outbound_ignores_asterisk_called_and_uses_dst() -> None:
    row = [*row16(dcontext="from-internal", src="101", dst="84951234567"), "1.2", "77"]
    cdr = parse_asterisk_row(row, ParseContext("RU", MSK, "userfield"))
    assert (cdr.direction, cdr.called, cdr.caller) == ("outbound", "+74951234567", "101")


@pytest.mark.parametrize(
    ("dcontext", "direction"),
    [
        ("from-trunk", "inbound"),
        ("from-pstn", "inbound"),
        ("ext-queues", "inbound"),
        ("from-internal", "outbound"),
        ("outbound-allroutes", "outbound"),
        ("Outbound_Calls", "outbound"),
        ("macro-dialout-trunk", "inbound"),
        ("", "inbound"),
    ],
)
def test_direction_from_dcontext(dcontext: str, direction: str) -> None:
    assert parse_asterisk_row(row16(dcontext=dcontext), RU).direction == direction


# ------------------------------------------------------------------ fields


@pytest.mark.parametrize(
    ("disposition", "status"),
    [
        ("ANSWERED", "answered"),
        ("NO ANSWER", "missed"),
        ("BUSY", "busy"),
        ("FAILED", "failed"),
        ("CONGESTION", "failed"),
        ("answered", "answered"),
    ],
)
def test_dispositions(disposition: str, status: str) -> None:
    assert parse_asterisk_row(row16(disposition=disposition), RU).status == status


@pytest.mark.parametrize("disposition", ["UNKNOWN", "", "OK"])
def test_unknown_disposition(disposition: str) -> None:
    assert err(row16(disposition=disposition)).field == "disposition"


def test_caller_from_clid_when_src_is_empty() -> None:
    assert parse_asterisk_row(row16(src=""), RU).caller == "+79161234567"
    assert parse_asterisk_row(row16(src="", clid='"Anonymous" <anonymous>'), RU).caller == ""
    assert parse_asterisk_row(row16(src="anonymous"), RU).caller == ""
    assert parse_asterisk_row(row16(src="Restricted"), RU).caller == ""


def test_answered_row_with_no_answer_time() -> None:
    cdr = parse_asterisk_row(row16(answer=""), RU)
    assert cdr.status == "answered" and cdr.answered_at is None and cdr.billsec == 211


def test_no_answer_row_drops_a_stray_answer_time() -> None:
    cdr = parse_asterisk_row(row16(disposition="NO ANSWER"), RU)
    assert cdr.answered_at is None and cdr.billsec == 0 and cdr.duration == 218


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("start", "2026-13-01 00:00:00"),
        ("start", "24.11.2026 12:15:02"),
        ("start", ""),
        ("start", "2026-11-24 25:00:00"),
        ("start", "1970-01-01 03:00:00"),
        ("answer", "2026-11-24 12:15:0x"),
        ("end", "2026-11-24T12:18"),
        ("duration", "x"),
        ("billsec", "-1"),
    ],
)
def test_bad_values_name_the_column(column: str, value: str) -> None:
    assert err(row16(**{column: value})).field == column


def test_times_out_of_order_name_the_column() -> None:
    assert err(row16(answer="2026-11-24 12:15:00")).field == "answer"
    assert err(row16(end="2026-11-24 12:15:00", answer="")).field == "end"


def test_missing_end_is_tolerated() -> None:
    cdr = parse_asterisk_row(row16(end=""), RU)
    assert cdr.ended_at is None and cdr.duration == 218


def test_t_separator_and_padding() -> None:
    a = parse_asterisk_row(row16(start="2026-11-24T12:15:02"), RU)
    b = parse_asterisk_row(row16(start=" 2026-11-24 12:15:02 "), RU)
    assert a.started_at == b.started_at == T0


def test_synthetic_call_id_is_stable_and_distinct() -> None:
    a = parse_asterisk_row(row16(), RU).call_id
    assert a == parse_asterisk_row(row16(), RU).call_id
    assert a != parse_asterisk_row(row16(channel="PJSIP/mtt-0000009f"), RU).call_id
    assert a.startswith("ast-") and len(a) == 28


def test_too_long_uniqueid() -> None:
    row = [*row16(), "pbx-" + "9" * 130 + ".1", ""]
    assert err(row).field == "uniqueid"
    # in 17 columns a value that is not uniqueid-shaped is the userfield
    assert parse_asterisk_row([*row16(), "9" * 129], RU).call_id.startswith("ast-")


# ------------------------------------------------------------------ local time and DST


def test_ambiguous_tie_prefers_the_earlier_instant() -> None:
    # both times inside the repeated hour: either reading fits duration; fold=0 wins
    cdr = parse_asterisk_row(
        row16(
            dst="0577000001",
            start="2026-10-25 03:10:00",
            answer="",
            end="2026-10-25 03:20:00",
            duration="600",
            billsec="0",
            disposition="NO ANSWER",
        ),
        UA,
    )
    assert cdr.started_at == datetime(2026, 10, 25, 0, 10, tzinfo=UTC).timestamp()
    assert cdr.ended_at == cdr.started_at + 600


def test_second_pass_of_the_repeated_hour() -> None:
    # answered at 03:58 EEST, ended at 03:02 EET: only the later reading of end fits
    cdr = parse_asterisk_row(
        row16(
            dst="0577000001",
            start="2026-10-25 03:57:00",
            answer="2026-10-25 03:58:00",
            end="2026-10-25 03:02:00",
            duration="300",
            billsec="240",
        ),
        UA,
    )
    start = datetime(2026, 10, 25, 0, 57, tzinfo=UTC).timestamp()
    assert (cdr.started_at, cdr.answered_at, cdr.ended_at) == (start, start + 60, start + 300)


def test_skipped_hour_reads_with_the_offset_before_the_change() -> None:
    # Kyiv springs forward 03:00 EET -> 04:00 EEST on 2026-03-29; 03:30 never happens
    t, alt = local_time("2026-03-29 03:30:00", KYIV, "start")
    assert alt is None
    assert t == datetime(2026, 3, 29, 1, 30, tzinfo=UTC).timestamp()  # read as +02:00


@pytest.mark.parametrize(
    "zone", ["America/New_York", "Australia/Lord_Howe", "America/St_Johns", "Asia/Kathmandu", "UTC"]
)
def test_local_time_in_odd_zones(zone: str) -> None:
    tz = ZoneInfo(zone)
    for day in range(0, 366, 3):
        t = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) + day * 86400 + 5400
        text = datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M:%S")
        first, second = local_time(text, tz, "start")
        assert t in (first, second)


ZONES = [
    "Europe/Kyiv",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Europe/London",
    "Pacific/Chatham",
    "Asia/Tehran",
    "America/Santiago",
]


@settings(max_examples=400, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    start=st.integers(946_684_800, 4_102_000_000),
    ring=st.integers(0, 90),
    talk=st.integers(0, 7200),
    answered=st.booleans(),
)
def test_rendered_rows_read_back(
    zone: str, start: int, ring: int, talk: int, answered: bool
) -> None:
    tz = ZoneInfo(zone)

    def local(t: int) -> str:
        return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M:%S")

    answer = start + ring
    end = answer + talk if answered else start + ring
    row = row16(
        start=local(start),
        answer=local(answer) if answered else "",
        end=local(end),
        duration=str(end - start),
        billsec=str(end - answer if answered else 0),
        disposition="ANSWERED" if answered else "NO ANSWER",
    )
    cdr = parse_asterisk_row(row, ParseContext("RU", tz))
    assert cdr.ended_at is not None
    assert cdr.ended_at - cdr.started_at == end - start
    if answered:
        assert cdr.answered_at is not None and cdr.ended_at - cdr.answered_at == talk
    texts = [local(start), local(end)] + ([local(answer)] if answered else [])
    if all(local_time(x, tz, "t")[1] is None for x in texts):
        assert (cdr.started_at, cdr.ended_at) == (start, end)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=12), min_size=16, max_size=21)
)
def test_arbitrary_rows_give_a_cdr_or_a_cdr_error(row: list[str]) -> None:
    try:
        cdr = parse_asterisk_row(row, RU)
    except CdrError as exc:
        assert exc.field
        return
    assert cdr.called.startswith("+")


@settings(max_examples=100, deadline=None)
@given(st.integers(946_684_800, 4_102_000_000))
def test_gap_and_fold_free_hours_are_exact(t: int) -> None:
    text = datetime.fromtimestamp(t, KYIV).strftime("%Y-%m-%d %H:%M:%S")
    first, second = local_time(text, KYIV, "start")
    assume(second is None)
    assert first == t


# ------------------------------------------------------------------ files and bodies


def test_parse_body_with_crlf_bom_and_blank_lines() -> None:
    text = (SAMPLES / "asterisk-master-16.csv").read_text()
    body = ("\ufeff" + text.replace("\n", "\r\n\r\n")).encode()
    out = parse(body, "text/csv; charset=utf-8", RU)
    assert out == [r for _, r in iter_file(SAMPLES / "asterisk-master-16.csv", RU)]


def test_line_numbers_count_blank_and_multiline_rows() -> None:
    row = row16(lastdata="PJSIP/101\n,30")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(row16())
    buf.write("\n")
    w.writerow(row)
    w.writerow(row16(disposition="BUSY"))
    numbers = [n for n, _ in iter_file(io.BytesIO(buf.getvalue().encode()), RU, "asterisk-csv")]
    assert numbers == [1, 3, 5]


def test_undecodable_bytes_do_not_stop_the_import() -> None:
    body = b'"","79161234567","74957000001","from-trunk","\xcf\xe5\xf2\xf0 <79161234567>"'
    body += b"," + ",".join(f'"{x}"' for x in row16()[5:12]).encode() + b",218,211,"
    body += b'"ANSWERED","DOCUMENTATION"\n'
    ((_, cdr),) = list(iter_file(io.BytesIO(body), RU, "asterisk-csv"))
    assert isinstance(cdr, Cdr) and cdr.called == "+74957000001"


def test_header_detection_only_on_the_first_row() -> None:
    assert asterisk_columns(["src", "dst", "start", "disposition"]) is not None
    assert asterisk_columns(row16()) is None
    buf = io.StringIO()
    csv.writer(buf).writerows([row16(), ["src", "dst", "start", "disposition"]])
    out = parse(buf.getvalue().encode(), "text/csv", RU)
    assert isinstance(out[0], Cdr) and isinstance(out[1], CdrError)


class CountingReader(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        self.read_bytes += len(data)
        buffer[: len(data)] = data
        return len(data)


def test_iter_file_streams_csv() -> None:
    line = (SAMPLES / "asterisk-master-16.csv").read_bytes().split(b"\n")[0] + b"\n"
    data = line * 40_000  # ~11 MB
    src = CountingReader(data)
    it = iter_file(src, RU)  # type: ignore[arg-type]
    n, first = next(it)
    assert n == 1 and isinstance(first, Cdr)
    assert src.read_bytes < 3_000_000 < len(data)
    assert sum(1 for _ in it) == 39_999


def test_a_year_of_rows_keeps_a_call_id_per_row() -> None:
    """20,000 rows 25 minutes apart (a year of one trunk): each stays its own call;
    how fast they parse is measured in bench/, not here."""
    tz = ZoneInfo("Europe/Kyiv")
    base = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    rows_ = []
    for i in range(20_000):
        t = base + i * 1500
        loc = datetime.fromtimestamp(t, tz)
        base_row = row16(
            src=f"050{i % 9000 + 1000000:07d}",
            dst=f"38057700{i % 50:04d}",
            start=loc.strftime("%Y-%m-%d %H:%M:%S"),
            answer=(loc + timedelta(seconds=5)).strftime("%Y-%m-%d %H:%M:%S"),
            end=(loc + timedelta(seconds=65)).strftime("%Y-%m-%d %H:%M:%S"),
            duration="65",
            billsec="60",
        )
        rows_.append([*base_row, f"{t}.{i}", ""])
    out = [parse_asterisk_row(r, UA) for r in rows_]
    assert len({c.call_id for c in out}) == 20_000
