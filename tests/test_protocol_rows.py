"""The SMB2 and DCE/RPC state machines fed rows of real recordings, cut the way real captures are cut: a
capture that began after the pipe was opened, a bind whose ack was lost, an answer that came as STATUS_PENDING
first, a CREATE compounded with the requests on its file. tshark reads each capture once a session
(tests/helpers/rows.py); which frames to drop is asked of tshark's display filter, not of the engine."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest

from helpers.rows import capture_rows, feed, frames, from_frame, without
from smbtrail.capture.inputs import expand
from smbtrail.network.pipeline import _raw_records
from smbtrail.options import Options
from smbtrail.records import FILE, OPERATION
from smbtrail.zeek.logs import is_zeek_log

PLAIN = Path(__file__).resolve().parent / "fixtures" / "lab" / "plain"
SC_QUERY = str(PLAIN / "sc_query_services.pcapng")  # impacket: svcctl over \PIPE\svcctl, READs answered pending
SC_LIFECYCLE = str(PLAIN / "sc_create_start_stop_delete.pcapng")  # four svcctl pipes, one per sc.exe run
PSEXEC = str(PLAIN / "psexec_impacket.pcapng")  # srvsvc then svcctl, and a file written to ADMIN$
BIND, BIND_ACK = "dcerpc.pkt_type == 11", "dcerpc.pkt_type == 12"
PENDING = "smb2.nt_status == 0x00000103"
# the final answer to a request the server first answered STATUS_PENDING (same async id, real status)
COMPLETES_PENDING = "smb2.flags.async == 1 && smb2.flags.response == 1 && smb2.nt_status != 0x00000103"


def operations(records) -> List:
    return [r for r in records if r.kind == OPERATION]


def named(records) -> List[Tuple]:
    """Per call: interface, operation, decoded arguments, status, and the frame that began it."""
    return [(r.rpc_uuid, r.rpc_interface, r.opnum, r.operation, r.args, r.status, r.provenance[0].frames[0])
            for r in operations(records)]


@pytest.mark.parametrize("capture", [SC_QUERY, PSEXEC])
def test_rows_fed_directly_make_the_pipelines_records(capture):
    """The helper feeds the analyzer as the pipeline does: same records, field for field."""
    piped = list(_raw_records(expand([capture], Options().max_expansion, is_zeek_log), Options()))
    fed = feed(capture_rows(capture), file=capture)
    assert [r.model_dump() for r in fed] == [r.model_dump() for r in piped]
    assert operations(fed)


def test_status_pending_waits_for_the_final_answer():
    """An interim STATUS_PENDING READ answer completes nothing: the RPC answer arrives in the final one."""
    rows = capture_rows(SC_QUERY)
    pending, finals = frames(SC_QUERY, PENDING), frames(SC_QUERY, COMPLETES_PENDING)
    assert pending and len(finals) == len(pending)
    answered = finals & frames(SC_QUERY, "dcerpc.pkt_type == 2")
    assert answered, "no RPC response came after STATUS_PENDING in the recording"
    calls = operations(feed(rows))
    assert all(r.status in ("ok", "0xea") for r in calls), [r.status for r in calls]  # 0xea: ERROR_MORE_DATA
    for frame in answered:
        (call,) = [r for r in calls if frame in r.provenance[0].frames]
        assert call.operation == "REnumServicesStatusW" and call.args.get("return_code") is not None
    # without the final answers, the calls they answered stay open to the end: the interim answer is not taken
    cut = {r.provenance[0].frames[0]: r for r in operations(feed(without(rows, finals)))}
    for call in calls:
        if answered & set(call.provenance[0].frames):
            assert cut[call.provenance[0].frames[0]].status == "no_response"
            assert "return_code" not in cut[call.provenance[0].frames[0]].args


@pytest.mark.parametrize("capture", [SC_QUERY, SC_LIFECYCLE, PSEXEC])
def test_bind_without_its_ack_still_names_the_interface(capture):
    """A lost BIND_ACK: the interface is the one the BIND offered for the context; without the BIND as well,
    the calls are still recorded, by opnum, with no interface guessed (never from the pipe name)."""
    rows = capture_rows(capture)
    acks, binds = frames(capture, BIND_ACK), frames(capture, BIND)
    assert acks and binds
    whole = named(feed(rows))
    assert named(feed(without(rows, acks))) == whole
    blind = operations(feed(without(rows, acks | binds)))
    assert len(blind) == len(whole)
    assert all(r.rpc_uuid is None and r.operation == f"opnum_{r.opnum}" for r in blind)
    assert {r.path for r in blind} <= {"svcctl", "srvsvc"}  # the pipe name was there to misuse


@pytest.mark.parametrize("capture", [SC_QUERY, SC_LIFECYCLE, PSEXEC])
def test_pipe_opened_before_the_capture_began(capture):
    """The capture begins at the first BIND: no NEGOTIATE, SESSION_SETUP, TREE_CONNECT nor the pipe's CREATE.
    Every call from there on is read as in the whole recording, interface, arguments and status alike; the
    pipe's name and the account are unknown, and the pipe is still reported."""
    rows = capture_rows(capture)
    first = min(frames(capture, BIND))
    whole = [call for call in named(feed(rows)) if call[-1] >= first]
    late = feed(from_frame(rows, first))
    assert named(late) == whole and whole
    unseen = [r for r in late if r.kind == FILE and r.operation == "pipe_open" and first in r.provenance[0].frames]
    assert len(unseen) == 1 and not unseen[0].path
    on_it = [r for r in operations(late) if not r.path]  # the calls on the pipe whose CREATE was not seen
    assert on_it and all(r.user is None and r.transport == "ncacn_np" for r in on_it)


def test_capture_begun_after_the_bind_keeps_the_calls_by_opnum():
    """Begun after the BIND_ACK, mid-association: the calls are still records, by opnum, interface unknown."""
    rows = capture_rows(SC_QUERY)
    after = max(frames(SC_QUERY, BIND_ACK)) + 1
    whole = [call for call in named(feed(rows)) if call[-1] >= after]
    late = operations(feed(from_frame(rows, after)))
    assert [(r.opnum, r.provenance[0].frames[0]) for r in late] == [(c[2], c[-1]) for c in whole] and late
    assert all(r.rpc_uuid is None and r.operation == f"opnum_{r.opnum}" for r in late)


@pytest.fixture(scope="module")
def compound(shared_data) -> str:
    """A macOS client deleting `test` on a Samba share: CREATE + SET_INFO(delete) + CLOSE in one message, the
    SET_INFO and CLOSE naming the file by the related-FID placeholder (suricata-verify smb2-delete)."""
    return str(shared_data / "suricata-verify" / "smb2-delete" / "input.pcap")


def test_compound_create_set_info_close_is_one_delete(compound):
    rows = capture_rows(compound)
    chained = frames(compound, "smb2.chain_offset > 0 && smb2.cmd == 5 && smb2.flags.response == 0")
    deleting = chained & frames(compound, "smb2.cmd == 17 && smb2.disposition.delete_on_close == 1")
    assert len(deleting) == 1
    (request,) = deleting
    files = [r for r in feed(rows) if r.kind == FILE]
    (deleted,) = [r for r in files if r.operation == "delete"]
    assert deleted.path == "test" and deleted.status == "ok" and not deleted.partial
    assert deleted.provenance[0].frames == [request, request + 1]  # the compound request and its compound answer
    # the answer closes it: without the answer, nothing was deleted
    assert not [r for r in feed(without(rows, {request + 1})) if r.kind == FILE and r.operation == "delete"]


def test_compound_create_that_fails_fails_the_chained_requests(compound):
    """CREATE `:AFP_AfpInfo` + READ + CLOSE: the CREATE fails, so the READ never read and nothing stays open."""
    rows = capture_rows(compound)
    failed = frames(compound, "smb2.chain_offset > 0 && smb2.cmd == 8 && smb2.flags.response == 0")
    assert failed
    files = [r for r in feed(rows) if r.kind == FILE and set(r.provenance[0].frames) & failed]
    assert len(files) == len(failed)
    for rec in files:
        assert rec.path == ":AFP_AfpInfo" and rec.operation == "open" and rec.status == "0xc0000034"
        assert not rec.partial and "bytes_read" not in rec.args
