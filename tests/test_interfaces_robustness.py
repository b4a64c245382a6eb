"""Bad stubs never raise: real stubs cut short, with flipped bytes or without the transfer syntax."""

from __future__ import annotations

import os

import pytest

from helpers.rpc_calls import cached_calls, calls_of, otrf_capture, suricata
from smbtrail.interfaces import MODULES, decoder_for

SVCCTL = "367abb81-9844-35f1-ad32-98f038001003"
BAD_DATA_ERRORS = ("NdrError", "ValueError", "IndexError", "KeyError", "error")  # error = struct.error


def _checked(args: dict) -> dict:
    """A bad stub may stop a decoder, but only with a data error: anything else is a decoder bug."""
    assert isinstance(args, dict)
    assert args.get("_decode_error", "NdrError").split(":")[0] in BAD_DATA_ERRORS, args["_decode_error"]
    return args


def _real_calls(shared_data, tmp_path):
    calls = list(cached_calls(suricata(shared_data, "smb2-07")))
    calls += cached_calls(suricata(shared_data, "smb2-06"))
    calls += cached_calls(suricata(shared_data, "smb2-04"))
    calls += cached_calls(str(shared_data / "suricata-verify/dcerpc/dcerpc-ctxids/input.pcap"))[:40]
    calls += cached_calls(str(otrf_capture(shared_data, tmp_path, "covenant_sharpsc_create_dcerpc_smb_svcctl")))
    return [c for c in calls if c.stub and decoder_for(c.uuid or "")]


def test_truncated_create_service_keeps_what_was_read(shared_data):
    (create,) = calls_of(cached_calls(suricata(shared_data, "smb2-07")), SVCCTL, 45)
    cut = decoder_for(SVCCTL).decode(45, True, {"_ndr64": "0"}, create.stub[:80])
    assert cut["service_name"] == "PSEXESVC" and "binary_path" not in cut
    assert cut["_decode_error"].startswith("NdrError")


def test_cut_and_flipped_real_stubs_never_raise(shared_data, tmp_path):
    calls = _real_calls(shared_data, tmp_path)
    assert len(calls) > 100
    for call in calls:
        decoder = decoder_for(call.uuid)
        hint = {"_ndr64": "1" if call.ndr64 else "0"}
        for size in range(1, len(call.stub), max(1, len(call.stub) // 12)):
            _checked(decoder.decode(call.opnum, call.request, hint, call.stub[:size]))
        for position in range(0, len(call.stub), max(1, len(call.stub) // 8)):
            flipped = bytearray(call.stub)
            flipped[position] ^= 0xFF
            _checked(decoder.decode(call.opnum, call.request, {}, bytes(flipped)))


def test_transfer_syntax_is_detected_without_a_hint(shared_data, tmp_path):
    for call in _real_calls(shared_data, tmp_path):
        if call.partial:
            continue
        guessed = decoder_for(call.uuid).decode(call.opnum, call.request, {}, call.stub)
        assert guessed == call.decode(), (call.frame, call.uuid, call.opnum)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_random_bytes_give_a_dict(module):
    for opnum in sorted(set(getattr(module, "REQUESTS", {})) | set(getattr(module, "RESPONSES", {})) | {999}):
        for size in (0, 3, 24, 64, 300):
            for request in (True, False):
                for fields in ({}, {"_ndr64": "1"}, {"_partial": "1", "_ndr64": "0"}):
                    _checked(module.decode(opnum, request, fields, os.urandom(size)))


def test_odd_field_values():
    for module in MODULES:
        fields = {name: "0xzz,,\\\\,,garbage" for name in module.FIELDS}
        _checked(module.decode(1, True, fields, None))
        _checked(module.decode(1, False, fields, None))
