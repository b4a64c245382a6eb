"""The sweep of directories that killed runs left: what a killed run's surviving child does to it."""

import os
import time

import pytest

from smbtrail import tempdirs

pytestmark = pytest.mark.skipif(tempdirs.fcntl is None, reason="no flock: no sweep")


def _orphan_wrote_after_sweep(tmp_path, age: float) -> str:
    """A directory the sweep emptied, into which a killed run's tcpdump then wrote its selection: no lock."""
    path = tmp_path / "smbtrail-dissect-orphan"
    path.mkdir(mode=0o700)
    (path / "selected.pcap").write_bytes(b"late")
    then = time.time() - age
    os.utime(path, (then, then))
    return str(path)


def test_a_lockless_directory_is_removed_once_it_stopped_changing(tmp_path):
    path = _orphan_wrote_after_sweep(tmp_path, tempdirs.ORPHANED + 5)
    assert tempdirs.sweep_stale(tmp=str(tmp_path)) == 1
    assert not os.path.exists(path)


def test_a_fresh_lockless_directory_is_kept(tmp_path):
    """A live run's directory is without its lock only between mkdtemp and locking."""
    path = _orphan_wrote_after_sweep(tmp_path, 0)
    assert tempdirs.sweep_stale(tmp=str(tmp_path)) == 0
    assert os.path.exists(path)


def test_a_held_directory_is_kept_and_an_abandoned_one_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempdirs.tempfile, "tempdir", str(tmp_path))
    abandoned = tempdirs.LockedTempdir(tempdirs.DISSECT)
    os.close(abandoned._lock)  # what the kernel does when the run dies
    (tmp_path / os.path.basename(abandoned.path) / "rows").write_bytes(b"x")
    with tempdirs.LockedTempdir(tempdirs.ZIP) as live:
        assert tempdirs.sweep_stale(tmp=str(tmp_path)) == 1
        assert sorted(os.listdir(tmp_path)) == [os.path.basename(live.path)]


def test_a_symlink_named_like_ours_is_never_followed(tmp_path):
    """Only directories this user made are swept: a link with our prefix leaves its target alone."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_bytes(b"x")
    link = tmp_path / "smbtrail-dissect-link"
    link.symlink_to(target)
    then = time.time() - tempdirs.ORPHANED - 5
    os.utime(link, (then, then), follow_symlinks=False)
    assert tempdirs.sweep_stale(tmp=str(tmp_path)) == 0
    assert (target / "keep").exists() and link.is_symlink()
