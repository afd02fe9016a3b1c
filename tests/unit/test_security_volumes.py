"""Volume-side API input that must never reach outside the engine's own
directories or change what a mount is."""

from __future__ import annotations

import os

import pytest

from actors import volumes as V


@pytest.mark.parametrize("opts", ["rbind", "bind", "remount", "move", "size=1m,rbind", "RBIND"])
def test_tmpfs_options_cannot_make_a_bind_remount_or_move(opts):
    with pytest.raises(V.VolumeError):
        V.parse_tmpfs({"/mnt": opts})
    with pytest.raises(V.VolumeError):
        V.parse_mount({"Type": "tmpfs", "Target": "/mnt",
                       "TmpfsOptions": {"Options": [[o] for o in opts.split(",")]}})


def test_tmpfs_docker_options_still_work():
    assert V.parse_tmpfs({"/run": "exec,suid,size=64m"}) == {"/run": ["exec", "suid", "size=64m"]}


@pytest.mark.parametrize("name", ["..", "../x", "a/b", "/etc", ".x", "a" * 300 + "/..", "a\x00b", ""])
def test_volume_names_cannot_leave_the_volumes_directory(tmp_path, name):
    st = V.VolumeStore(str(tmp_path))
    with pytest.raises((V.VolumeError, OSError)):
        st.create(name)
    assert sorted(os.listdir(tmp_path)) == ["volumes"]


def test_tree_size_does_not_follow_symlinks(tmp_path):
    big = tmp_path / "host"
    big.mkdir()
    (big / "f").write_bytes(b"x" * (1 << 20))
    vol = tmp_path / "vol"
    vol.mkdir()
    os.symlink(str(big), str(vol / "link"))
    assert V.tree_size(str(vol)) < (1 << 20)
