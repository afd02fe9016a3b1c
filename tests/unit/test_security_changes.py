"""docker diff walks a running container's upper directory, which the
container changes meanwhile: a directory swapped for a symlink (to a host
path) between the daemon's lstat and its listing must never be followed.
The swap is made deterministic by doing it right after the walk's lstat."""

from __future__ import annotations

import os

from actors import api_files


def test_overlay_changes_never_follows_a_swapped_directory(tmp_path, monkeypatch):
    host = tmp_path / "host"
    host.mkdir()
    (host / "SECRET").write_text("x")
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "a").write_text("a")
    lower = tmp_path / "lower"
    lower.mkdir()
    target = str(upper / "d")
    real_lstat, real_stat = os.lstat, os.stat
    swapped: list[int] = []

    def swap(dir_fd=None):
        swapped.append(1)
        if dir_fd is None:
            os.rename(target, target + ".old")
            os.symlink(str(host), target)
        else:
            os.rename("d", "d.old", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            os.symlink(str(host), "d", dir_fd=dir_fd)

    def lstat(path, *a, **kw):
        st = real_lstat(path, *a, **kw)
        if path == target and not swapped:
            swap()
        return st

    def stat(path, *a, dir_fd=None, follow_symlinks=True, **kw):
        st = real_stat(path, *a, dir_fd=dir_fd, follow_symlinks=follow_symlinks, **kw)
        if path == "d" and dir_fd is not None and not follow_symlinks and not swapped:
            swap(dir_fd)
        return st

    monkeypatch.setattr(os, "lstat", lstat)
    monkeypatch.setattr(os, "stat", stat)
    out = api_files.overlay_changes([str(lower)], str(upper))
    assert swapped, "the walk did not look at d"
    assert not any("SECRET" in p for p, _ in out), out
