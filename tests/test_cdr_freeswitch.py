"""FreeSWITCH mod_json_cdr: encoded values, callflow shapes, legs, causes, POST encodings."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from attribution.cdr import (
    Cdr,
    CdrError,
    CdrIgnored,
    CdrNotFinal,
    ParseContext,
    iter_file,
    parse,
    parse_freeswitch,
)
from attribution.cdr.freeswitch import decode_body, object_pairs

SAMPLES = Path(__file__).parent / "samples" / "cdr"
UA = ParseContext("UA", ZoneInfo("Europe/Kyiv"))
T0 = 1795511702.0


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text(), object_pairs_hook=object_pairs)
    return data


ANSWERED = sample("freeswitch-answered.cdr.json")


def variant(**variables: Any) -> dict[str, Any]:
    out = copy.deepcopy(ANSWERED)
    for key, value in variables.items():
        if value is ...:
            out["variables"].pop(key, None)
        else:
            out["variables"][key] = value
    return out


def err(obj: Any) -> CdrError:
    with pytest.raises(CdrError) as info:
        parse_freeswitch(obj, UA)
    return info.value


def test_answered_a_leg_with_encoded_values() -> None:
    assert ANSWERED["variables"]["caller_id"].startswith("%22Olena%20Koval%22")
    assert parse_freeswitch(ANSWERED, UA) == Cdr(
        call_id="4f3b2a1c-5d6e-4f70-8a9b-0c1d2e3f4a5b",
        direction="inbound",
        caller="+380501234567",
        called="+380577000001",
        started_at=T0,
        answered_at=T0 + 9,
        ended_at=T0 + 221,
        status="answered",
        duration=221,
        billsec=212,
        recording_url=None,
    )


def test_called_is_the_original_profiles_did_not_the_transfer_target() -> None:
    flows = ANSWERED["callflow"]
    assert [f["profile_index"] for f in flows] == ["2", "1"]  # newest first, as written
    assert flows[0]["caller_profile"]["destination_number"] == "101"
    assert parse_freeswitch(ANSWERED, UA).called == "+380577000001"


def test_plain_values_and_originator_cancel() -> None:
    ((n, cdr),) = list(iter_file(SAMPLES / "freeswitch-missed-plain.cdr.json", UA))
    assert n == 1 and isinstance(cdr, Cdr)
    assert (cdr.status, cdr.caller, cdr.called) == ("missed", "+380671112233", "+380577000002")
    assert (cdr.answered_at, cdr.billsec, cdr.duration) == (None, 0, 18)


def test_legacy_repeated_callflow_keys() -> None:
    text = (SAMPLES / "freeswitch-busy-legacy.cdr.json").read_text()
    assert text.count('"callflow":') == 2
    kept = json.loads(text, object_pairs_hook=object_pairs)["callflow"]
    assert [f["profile_index"] for f in kept] == ["2", "1"]
    ((_, cdr),) = list(iter_file(SAMPLES / "freeswitch-busy-legacy.cdr.json", UA))
    assert isinstance(cdr, Cdr) and cdr.status == "busy" and cdr.called == "+380577000001"
    # without the hook json keeps the last (oldest) profile: the same answer
    assert parse_freeswitch(json.loads(text), UA) == cdr


def test_callflow_as_single_object_or_without_indexes() -> None:
    one = copy.deepcopy(ANSWERED)
    one["callflow"] = ANSWERED["callflow"][1]
    assert parse_freeswitch(one, UA).called == "+380577000001"
    bare = copy.deepcopy(ANSWERED)
    for f in bare["callflow"]:
        del f["profile_index"]
    assert parse_freeswitch(bare, UA).called == "+380577000001"  # last written is oldest
    none = copy.deepcopy(ANSWERED)
    del none["callflow"]
    assert parse_freeswitch(none, UA).called == "+380577000001"  # sip_req_user


def test_b_leg_is_ignored() -> None:
    ((_, res),) = list(iter_file(SAMPLES / "freeswitch-b-leg.cdr.json", UA))
    assert isinstance(res, CdrIgnored) and isinstance(res, CdrNotFinal)
    assert res.field == "leg"


def test_outbound_uses_the_presented_caller_id_and_recording() -> None:
    ((_, cdr),) = list(iter_file(SAMPLES / "freeswitch-outbound.cdr.json", UA))
    assert isinstance(cdr, Cdr)
    assert (cdr.direction, cdr.caller, cdr.called) == ("outbound", "+380577000000", "+380501234567")
    assert cdr.recording_url == "https://pbx.example.ua/recordings/8c9d0e1f.mp3"
    assert (cdr.billsec, cdr.duration) == (120, 135)


@pytest.mark.parametrize(
    ("variables", "direction"),
    [
        ({"direction": "outbound"}, "outbound"),
        ({"call_direction": "outbound", "direction": "inbound"}, "outbound"),
        ({"call_direction": "inbound", "direction": "outbound"}, "inbound"),
        ({"direction": ...}, "inbound"),  # channel_data.direction
    ],
)
def test_direction(variables: dict[str, Any], direction: str) -> None:
    assert parse_freeswitch(variant(**variables), UA).direction == direction


def test_local_calls_are_ignored() -> None:
    assert isinstance(err(variant(call_direction="local")), CdrIgnored)


@pytest.mark.parametrize(
    ("cause", "status"),
    [
        ("USER_BUSY", "busy"),
        ("NO_ANSWER", "missed"),
        ("ORIGINATOR_CANCEL", "missed"),
        ("NO_USER_RESPONSE", "missed"),
        ("ALLOTTED_TIMEOUT", "missed"),
        ("CALL_REJECTED", "failed"),
        ("UNALLOCATED_NUMBER", "failed"),
        ("NORMAL_TEMPORARY_FAILURE", "failed"),
        ("", "failed"),
        ("NORMAL_CLEARING", "failed"),
    ],
)
def test_unanswered_status_by_hangup_cause(cause: str, status: str) -> None:
    obj = variant(answer_epoch="0", answer_uepoch="0", billsec="0", hangup_cause=cause)
    for flow in obj["callflow"]:
        flow["times"]["answered_time"] = "0"
    cdr = parse_freeswitch(obj, UA)
    assert cdr.status == status and cdr.answered_at is None and cdr.billsec == 0


def test_billsec_alone_means_answered() -> None:
    obj = variant(answer_epoch="0", answer_uepoch=..., billsec="200", hangup_cause="X")
    for flow in obj["callflow"]:
        flow["times"]["answered_time"] = "0"
    cdr = parse_freeswitch(obj, UA)
    assert cdr.status == "answered" and cdr.answered_at == T0 + 21


def test_epoch_fallbacks() -> None:
    cdr = parse_freeswitch(variant(start_epoch=..., answer_epoch=..., end_epoch=...), UA)
    assert (cdr.started_at, cdr.answered_at, cdr.ended_at) == (
        T0 + 0.104133,
        T0 + 9.380521,
        T0 + 221.911208,
    )  # the *_uepoch values
    cdr = parse_freeswitch(
        variant(
            start_epoch=...,
            start_uepoch=...,
            answer_epoch=...,
            answer_uepoch=...,
            end_epoch=...,
            end_uepoch=...,
        ),
        UA,
    )
    assert (cdr.started_at, cdr.answered_at, cdr.ended_at) == (
        T0 + 0.104133,
        T0 + 9.380521,
        T0 + 221.911208,
    )  # callflow times


def test_computes_duration_and_billsec_when_absent() -> None:
    cdr = parse_freeswitch(variant(duration=..., billsec=...), UA)
    assert (cdr.duration, cdr.billsec) == (221, 212)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("start_epoch", "soon"),
        ("end_epoch", "1795511702000"),
        ("answer_epoch", "-"),
        ("billsec", "1.5"),
        ("duration", "-3"),
    ],
)
def test_bad_variables_name_themselves(name: str, value: str) -> None:
    assert err(variant(**{name: value})).field == name


def test_missing_pieces() -> None:
    assert err({"core-uuid": "x"}).field == "variables"
    assert err(["not", "an", "object"]).field == "record"
    bare: dict[str, Any] = {"variables": {"uuid": "u1", "sip_req_user": "0577000001"}}
    assert err(bare).field == "start_epoch"
    assert (
        err({"variables": {"uuid": "u1", "start_epoch": "1795511702"}}).field
        == "destination_number"
    )


def test_called_errors_name_the_variable_they_came_from() -> None:
    obj = variant()
    for flow in obj["callflow"]:
        flow["caller_profile"]["destination_number"] = "9999"
    assert err(obj).field == "destination_number"


def test_call_id_fallbacks() -> None:
    assert (
        parse_freeswitch(variant(uuid=...), UA).call_id == "4f3b2a1c-5d6e-4f70-8a9b-0c1d2e3f4a5b"
    )  # caller profile uuid
    top = variant(uuid=...)
    top["uuid"] = "top-level-uuid"
    assert parse_freeswitch(top, UA).call_id == "top-level-uuid"

    def no_uuid(start: str) -> dict[str, Any]:
        obj = variant(uuid=..., start_epoch=start)
        for flow in obj["callflow"]:
            del flow["caller_profile"]["uuid"]
        return obj

    a, b = parse_freeswitch(no_uuid("1795511702"), UA), parse_freeswitch(no_uuid("1795511700"), UA)
    assert a.call_id.startswith("fs-") and a.call_id != b.call_id  # never core-uuid alone
    assert a.call_id == parse_freeswitch(no_uuid("1795511702"), UA).call_id


def test_caller_fallbacks_and_anonymous() -> None:
    obj = variant()
    for flow in obj["callflow"]:
        flow["caller_profile"]["caller_id_number"] = "0000000000"
        flow["caller_profile"]["ani"] = ""
    obj["variables"].update(sip_from_user="anonymous", caller_id="%22%22%20%3C%3E")
    assert parse_freeswitch(obj, UA).caller == ""
    plain = variant(caller_id_number="%2B380931234567")
    assert parse_freeswitch(plain, UA).caller == "+380931234567"


def test_recording_url_only_when_http() -> None:
    assert parse_freeswitch(variant(recording_url="/var/lib/rec/x.wav"), UA).recording_url is None
    assert (
        parse_freeswitch(
            variant(recording_url=quote("https://r.example/x.mp3", safe="")), UA
        ).recording_url
        == "https://r.example/x.mp3"
    )


# ------------------------------------------------------------------ POST bodies


RAW = (SAMPLES / "freeswitch-answered.cdr.json").read_bytes()
EXPECTED = [parse_freeswitch(ANSWERED, UA)]


def test_post_plain_json() -> None:
    assert parse(RAW, "application/json", UA) == EXPECTED
    assert parse(RAW, "application/json", UA, "freeswitch-json") == EXPECTED


def test_post_encode_true_is_a_url_encoded_form() -> None:
    body = b"cdr=" + quote(RAW.decode().strip(), safe="").encode()
    assert decode_body(body).decode() == RAW.decode().strip()
    assert parse(body, "application/x-www-form-urlencoded", UA) == EXPECTED


def test_post_encode_base64() -> None:
    body = b"cdr=" + base64.b64encode(RAW.strip())
    assert parse(body, "application/x-www-form-base64-encoded", UA) == EXPECTED
    assert parse(body, "", UA, "freeswitch-json") == EXPECTED
    with pytest.raises(CdrError) as info:
        parse(b"cdr=%%%", "application/x-www-form-base64-encoded", UA)
    assert info.value.field == "cdr"


def test_batch_of_records_and_forced_generic() -> None:
    two = b"[" + RAW.strip() + b"," + (SAMPLES / "freeswitch-b-leg.cdr.json").read_bytes() + b"]"
    out = parse(two, "application/json", UA)
    assert out[0] == EXPECTED[0] and isinstance(out[1], CdrIgnored)
    forced = parse(RAW, "application/json", UA, "json")
    assert isinstance(forced[0], CdrError) and forced[0].field == "core-uuid"
