"""Host logs read on two processes give exactly the records of one process, in the same order, also when
the helper process dies or the caller stops early."""

from __future__ import annotations

import multiprocessing
import os
from itertools import islice

import pytest

from smbtrail.hostlog import parallel, read_hostlogs

pytestmark = pytest.mark.shared
SAMPLES = "evtx-attack-samples"


def _exact(records):
    """Everything that tells two records apart, nested provenance included."""
    return [(r.model_dump(), sorted(r.model_fields_set), [sorted(p.model_fields_set) for p in r.provenance])
            for r in records]


@pytest.fixture(autouse=True)
def idle_machine(monkeypatch):
    """Other work on the machine must not turn the two-process path off during these tests."""
    monkeypatch.setattr(parallel, "_idle_core", lambda: True)


@pytest.fixture(scope="module")
def one_process(shared_data):
    saved = parallel._can_fork
    parallel._can_fork = lambda: False
    try:
        return _exact(read_hostlogs([str(shared_data / SAMPLES)], all_events=True))
    finally:
        parallel._can_fork = saved


def test_two_processes_give_the_records_of_one(shared_data, one_process):
    paths = [p for p in (shared_data / SAMPLES).rglob("*") if p.is_file()]
    assert len(paths) > 1 and parallel._can_fork(), "this test needs fork and two cores"
    assert any(parallel._plan(sorted(map(str, paths))))
    assert _exact(read_hostlogs([str(shared_data / SAMPLES)], all_events=True)) == one_process
    assert not multiprocessing.active_children()


class _DyingQueue:
    """The helper's queue that takes `puts` batches, delivers them, then ends the helper process."""

    def __init__(self, out, puts):
        self.out, self.left = out, puts

    def put(self, item):
        if not self.left:
            self.out.close()
            self.out.join_thread()
            os._exit(1)
        self.left -= 1
        self.out.put(item)


def test_helper_death_loses_nothing(shared_data, one_process, monkeypatch):
    """The helper dies inside a file: the caller reads the rest of it, past the records it already took,
    and every later file itself."""
    help_files, rebuild = parallel._help, parallel.record_of
    received = []

    def read_and_die(files, read, out):
        help_files(files, read, _DyingQueue(out, 5))

    def counted(fields):
        received.append(fields)
        return rebuild(fields)

    monkeypatch.setattr(parallel, "BATCH", 2)
    monkeypatch.setattr(parallel, "_help", read_and_die)
    monkeypatch.setattr(parallel, "record_of", counted)
    assert _exact(read_hostlogs([str(shared_data / SAMPLES)], all_events=True)) == one_process
    assert 0 < len(received) < len(one_process)
    assert not multiprocessing.active_children()


def test_stopping_early_ends_the_helper(shared_data, one_process):
    records = read_hostlogs([str(shared_data / SAMPLES)], all_events=True)
    assert _exact(islice(records, 3)) == one_process[:3]
    assert multiprocessing.active_children()
    records.close()
    assert not multiprocessing.active_children()
