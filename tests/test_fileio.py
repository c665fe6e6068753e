"""Atomic writes: content, normal permissions (not mkstemp's 0600), nothing left behind on failure."""

from __future__ import annotations

import os
import stat

import pytest

from edge_wbc import fileio


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_atomic_writes_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        saved = fileio._UMASK
        fileio._UMASK = 0o022
        t = fileio.atomic_write_text(tmp_path / "sub" / "a.txt", "héllo\n")
        b = fileio.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    finally:
        fileio._UMASK = saved
        os.umask(old)
    assert t.read_text(encoding="utf-8") == "héllo\n" and b.read_bytes() == b"\x00\x01"
    assert _mode(t) == 0o644 and _mode(b) == 0o644


def test_module_umask_is_the_process_umask():
    cur = os.umask(0)
    os.umask(cur)
    assert fileio._UMASK == cur


def test_failure_leaves_target_and_no_temp_file(tmp_path):
    p = tmp_path / "keep.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with fileio.atomic_open(p) as fh:
            fh.write("new")
            raise RuntimeError("boom")
    assert p.read_text() == "old" and sorted(x.name for x in tmp_path.iterdir()) == ["keep.txt"]
    fileio.atomic_write_text(p, "new")
    assert p.read_text() == "new" and sorted(x.name for x in tmp_path.iterdir()) == ["keep.txt"]


def test_newline_is_passed_on(tmp_path):
    with fileio.atomic_open(tmp_path / "c.csv", "w", newline="") as fh:
        fh.write("a\r\nb\n")
    assert (tmp_path / "c.csv").read_bytes() == b"a\r\nb\n"
