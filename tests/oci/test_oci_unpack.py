import gzip
import hashlib
import io
import os
import stat

import pytest

from oci.errors import InvalidArgument, UnsafeLayer
from oci.unpack import OPAQUE_XATTR, clean_path, detect_compression, unpack_layer
from tests.helpers.images import MTIME, make_tar, tar_entry as E

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, trusted.* xattrs, lchown)")


@pytest.fixture
def env(tmp_path):
    """dest (the layer dir) and a sibling 'outside' dir with a sentinel file."""
    dest = tmp_path / "layer"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    (outside / "target").write_text("original")
    return dest, outside


def snapshot(path):
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_nlink, st.st_mtime_ns)
    st = os.lstat(path)
    out["."] = (st.st_mode, st.st_nlink, st.st_mtime_ns)
    return out


def unpack(data, dest, **kw):
    return unpack_layer(io.BytesIO(data), str(dest), **kw)


# ----------------------------------------------------------------- basics


def test_clean_path():
    assert clean_path("/a/./b/") == ["a", "b"]
    assert clean_path("./") == []
    assert clean_path("a/../b") == ["b"]
    with pytest.raises(UnsafeLayer):
        clean_path("../x")
    with pytest.raises(UnsafeLayer):
        clean_path("a/../../x")


def test_detect_compression():
    assert detect_compression(b"\x1f\x8b\x08") == "gzip"
    assert detect_compression(b"\xfd7zXZ\x00") == "xz"
    assert detect_compression(b"BZh9") == "bzip2"
    assert detect_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert detect_compression(b"bin/\x00") == "none"


def test_diff_id_is_sha256_of_uncompressed_stream(tmp_path):
    data = make_tar([E("a", data=b"hello"), E("d", "dir"), E("d/b", data=b"x" * 1000)])
    r = unpack(data, tmp_path)
    assert r.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert r.tar_size == len(data)
    assert r.size == 1005
    assert r.compression == "none"
    (tmp_path / "z").mkdir()
    rz = unpack(gzip.compress(data), tmp_path / "z")
    assert rz.diff_id == r.diff_id and rz.compression == "gzip"
    import bz2
    import lzma
    for comp, name in ((bz2.compress, "bzip2"), (lzma.compress, "xz")):
        d = tmp_path / name
        d.mkdir()
        rr = unpack(comp(data), d)
        assert (rr.diff_id, rr.compression) == (r.diff_id, name)
        assert (d / "d" / "b").read_bytes() == b"x" * 1000


def test_diff_id_includes_trailing_padding(tmp_path):
    data = make_tar([E("a", data=b"1")]) + b"\0" * 10240  # extra zero blocks
    r = unpack(data, tmp_path)
    assert r.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()


def test_large_file_streams(tmp_path):
    blob = os.urandom(1 << 20) * 24
    data = make_tar([E("big", data=blob)])
    r = unpack(data, tmp_path)
    assert r.size == len(blob)
    assert hashlib.sha256((tmp_path / "big").read_bytes()).digest() == hashlib.sha256(blob).digest()


def test_metadata_preserved(tmp_path):
    data = make_tar([
        E("dir", "dir", mode=0o750, mtime=1000),
        E("dir/exe", data=b"#!/bin/sh\n", mode=0o4755, mtime=2000),
        E("dir/link", "symlink", linkname="exe", mtime=3000),
        E("dir/hard", "hardlink", linkname="dir/exe"),
        E("fifo", "fifo", mode=0o640, mtime=4000),
        E("sticky", "dir", mode=0o1777),
        E("x", data=b"1", xattrs={"user.test": b"value\xff\x00bin"}),
        E("noparent/deep/file", data=b"p"),
    ])
    unpack(data, tmp_path)
    st = os.lstat(tmp_path / "dir")
    assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_mtime == 1000
    st = os.lstat(tmp_path / "dir/exe")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_mtime == 2000 and st.st_nlink == 2
    assert os.readlink(tmp_path / "dir/link") == "exe"
    assert os.lstat(tmp_path / "dir/link").st_mtime == 3000
    assert os.lstat(tmp_path / "dir/hard").st_ino == st.st_ino
    st = os.lstat(tmp_path / "fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime == 4000
    assert stat.S_IMODE(os.lstat(tmp_path / "sticky").st_mode) == 0o1777
    assert os.getxattr(tmp_path / "x", "user.test") == b"value\xff\x00bin"
    assert stat.S_IMODE(os.lstat(tmp_path / "noparent").st_mode) == 0o755
    assert (tmp_path / "noparent/deep/file").read_bytes() == b"p"


@needs_root
def test_ownership_and_devices(tmp_path):
    data = make_tar([
        E("owned", data=b"x", uid=1234, gid=5678),
        E("ldir", "dir", uid=1000, gid=1000),
        E("sl", "symlink", linkname="/nowhere", uid=42, gid=43),
        E("null", "char", devmajor=1, devminor=3, mode=0o666, uid=7),
        E("blk", "block", devmajor=7, devminor=0, mode=0o660),
    ])
    r = unpack(data, tmp_path, privileged=True)
    assert r.skipped == []
    st = os.lstat(tmp_path / "owned")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert (os.lstat(tmp_path / "ldir").st_uid, os.lstat(tmp_path / "ldir").st_gid) == (1000, 1000)
    st = os.lstat(tmp_path / "sl")
    assert (st.st_uid, st.st_gid) == (42, 43)
    st = os.lstat(tmp_path / "null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666 and st.st_uid == 7
    assert stat.S_ISBLK(os.lstat(tmp_path / "blk").st_mode)


def test_unprivileged_skips_devices_and_ownership(tmp_path):
    data = make_tar([E("null", "char", devmajor=1, devminor=3), E("f", data=b"", uid=1234)])
    r = unpack(data, tmp_path, privileged=False)
    if os.geteuid() == 0:
        # root can still mknod; unprivileged mode only changes ownership handling
        assert os.lstat(tmp_path / "f").st_uid == 0
    else:
        assert ("null", "device node (needs root)") in r.skipped
        assert not os.path.lexists(tmp_path / "null")


def test_readonly_dirs_are_filled_then_locked(tmp_path):
    data = make_tar([E("ro", "dir", mode=0o555), E("ro/f", data=b"x", mode=0o444),
                     E("ro/sub", "dir", mode=0o500), E("ro/sub/g", data=b"y")])
    unpack(data, tmp_path, privileged=False)
    assert stat.S_IMODE(os.lstat(tmp_path / "ro").st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(tmp_path / "ro/sub").st_mode) == 0o500
    os.chmod(tmp_path / "ro", 0o755)
    os.chmod(tmp_path / "ro/sub", 0o755)
    assert (tmp_path / "ro/sub/g").read_bytes() == b"y"


def test_duplicates_last_wins_and_type_changes(tmp_path):
    data = make_tar([
        E("a", data=b"first"), E("a", data=b"second"),
        E("f2d", data=b"file"), E("f2d", "dir"), E("f2d/in", data=b"in"),
        E("d2f", "dir"), E("d2f/child", data=b"c"), E("d2f", data=b"now a file"),
        E("d", "dir", mode=0o700), E("d", "dir", mode=0o711),
    ])
    unpack(data, tmp_path)
    assert (tmp_path / "a").read_bytes() == b"second"
    assert (tmp_path / "f2d/in").read_bytes() == b"in"
    assert (tmp_path / "d2f").read_bytes() == b"now a file"
    assert stat.S_IMODE(os.lstat(tmp_path / "d").st_mode) == 0o711


def test_root_entry_metadata(tmp_path):
    dest = tmp_path / "l"
    dest.mkdir()
    unpack(make_tar([E("./", "dir", mode=0o711, mtime=1234), E("./a", data=b"")]), dest)
    st = os.lstat(dest)
    assert stat.S_IMODE(st.st_mode) == 0o711 and st.st_mtime == 1234


# ----------------------------------------------------------------- malicious tars


def test_absolute_names_are_contained(env):
    dest, outside = env
    before = snapshot(outside)
    unpack(make_tar([E(str(outside / "pwned"), data=b"x"), E("/etc/evil", data=b"y")]), dest)
    assert snapshot(outside) == before
    assert (dest / str(outside).lstrip("/") / "pwned").read_bytes() == b"x"
    assert (dest / "etc/evil").read_bytes() == b"y"


@pytest.mark.parametrize("name", ["../outside/pwned", "a/../../outside/pwned",
                                  "./../outside/pwned", "a/b/../../../outside/pwned"])
def test_dotdot_escape_refused(env, name):
    dest, outside = env
    before = snapshot(outside)
    with pytest.raises(UnsafeLayer, match="outside of the layer"):
        unpack(make_tar([E("a/b", "dir"), E(name, data=b"x")]), dest)
    assert snapshot(outside) == before


@pytest.mark.parametrize("link", ["ABS", "../outside", "../../../../../../../OUT"])
def test_symlink_dir_then_file_through_it(env, link):
    dest, outside = env
    target = str(outside) if link == "ABS" else link.replace("OUT", str(outside).lstrip("/"))
    before = snapshot(outside)
    with pytest.raises(UnsafeLayer, match="is a symlink"):
        unpack(make_tar([E("evil", "symlink", linkname=target),
                         E("evil/pwned", data=b"x")]), dest)
    assert snapshot(outside) == before
    assert os.readlink(dest / "evil") == target  # the symlink itself is fine


def test_symlink_to_root_then_write_through_it(env):
    dest, outside = env
    before = snapshot(outside)
    with pytest.raises(UnsafeLayer):
        unpack(make_tar([E("root", "symlink", linkname="/"),
                         E("root" + str(outside) + "/pwned", data=b"x")]), dest)
    with pytest.raises(UnsafeLayer):
        unpack(make_tar([E("r", "symlink", linkname="/"), E("r/tmp", "dir")]), dest)
    assert snapshot(outside) == before


def test_nested_symlink_component(env):
    dest, outside = env
    before = snapshot(outside)
    with pytest.raises(UnsafeLayer):
        unpack(make_tar([E("a", "dir"), E("a/b", "symlink", linkname=str(outside)),
                         E("a/b/c/d", data=b"x")]), dest)
    assert snapshot(outside) == before


def test_symlink_then_regular_file_replaces_the_link(env):
    dest, outside = env
    before = snapshot(outside)
    unpack(make_tar([E("x", "symlink", linkname=str(outside / "target")),
                     E("x", data=b"replaced")]), dest)
    assert snapshot(outside) == before
    assert (outside / "target").read_text() == "original"
    assert not os.path.islink(dest / "x") and (dest / "x").read_bytes() == b"replaced"


def test_symlink_then_dir_replaces_the_link(env):
    dest, outside = env
    before = snapshot(outside)
    unpack(make_tar([E("x", "symlink", linkname=str(outside)), E("x", "dir", mode=0o777),
                     E("x/f", data=b"in")]), dest)
    assert snapshot(outside) == before
    assert os.path.isdir(dest / "x") and not os.path.islink(dest / "x")


def test_dir_replaced_by_symlink_keeps_deferred_metadata_inside(env):
    dest, outside = env
    before = snapshot(outside)
    unpack(make_tar([E("d", "dir", mode=0o777, mtime=5), E("d", "symlink", linkname=str(outside))]),
           dest)
    assert snapshot(outside) == before  # no chmod/utime through the link
    assert os.path.islink(dest / "d")


@pytest.mark.parametrize("linkname", ["/etc/passwd", "../outside/target", "etc/passwd"])
def test_hardlink_to_outside_refused(env, linkname):
    dest, outside = env
    before = snapshot(outside)
    nlink = os.stat("/etc/passwd").st_nlink
    with pytest.raises(UnsafeLayer):
        unpack(make_tar([E("h", "hardlink", linkname=linkname)]), dest)
    assert snapshot(outside) == before
    assert os.stat("/etc/passwd").st_nlink == nlink
    assert not os.path.lexists(dest / "h")


def test_hardlink_through_symlinked_dir_refused(env):
    dest, outside = env
    before = snapshot(outside)
    with pytest.raises(UnsafeLayer):
        unpack(make_tar([E("s", "symlink", linkname=str(outside)),
                         E("h", "hardlink", linkname="s/target")]), dest)
    with pytest.raises(UnsafeLayer):
        unpack(make_tar([E("s2", "symlink", linkname="/etc"),
                         E("h2", "hardlink", linkname="s2/passwd")]), dest)
    assert snapshot(outside) == before


def test_hardlink_to_symlink_links_the_symlink_itself(env):
    dest, outside = env
    before = snapshot(outside)
    unpack(make_tar([E("s", "symlink", linkname=str(outside / "target")),
                     E("h", "hardlink", linkname="s")]), dest)
    assert snapshot(outside) == before
    assert os.path.islink(dest / "h") and os.readlink(dest / "h") == str(outside / "target")


def test_file_over_symlink_with_hardlink_target_outside(env):
    """symlink 'x' -> outside/target, then hardlink 'y' -> 'x', then file 'y':
    replacing 'y' must never write into outside/target."""
    dest, outside = env
    unpack(make_tar([E("x", "symlink", linkname=str(outside / "target")),
                     E("y", "hardlink", linkname="x"), E("y", data=b"evil")]), dest)
    assert (outside / "target").read_text() == "original"


def test_whiteout_names_cannot_escape(env):
    dest, outside = env
    before = snapshot(outside)
    with pytest.raises(UnsafeLayer):
        unpack(make_tar([E(".wh..", data=b"")]), dest)
    with pytest.raises(UnsafeLayer):
        unpack(make_tar([E("s", "symlink", linkname=str(outside)), E("s/.wh.target", data=b"")]),
               dest)
    assert snapshot(outside) == before


def test_overlay_xattrs_from_tar_are_refused(tmp_path):
    r = unpack(make_tar([E("d", "dir", xattrs={"trusted.overlay.redirect": b"/etc"})]), tmp_path)
    assert any("trusted.overlay.redirect" in why for _, why in r.skipped)
    with pytest.raises(OSError):
        os.getxattr(tmp_path / "d", "trusted.overlay.redirect")


# ----------------------------------------------------------------- whiteouts


def whiteout_tar():
    return make_tar([
        E("etc", "dir"), E("etc/.wh.passwd", data=b""),
        E("opq", "dir"), E("opq/.wh..wh..opq", data=b""), E("opq/new", data=b"n"),
        E(".wh.gone", data=b""), E("x/.wh..wh.plnk", "dir"),
    ])


@needs_root
def test_whiteouts_become_overlay_char_devices(tmp_path):
    r = unpack(whiteout_tar(), tmp_path, privileged=True)
    st = os.lstat(tmp_path / "etc/passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert stat.S_ISCHR(os.lstat(tmp_path / "gone").st_mode)
    assert os.getxattr(tmp_path / "opq", OPAQUE_XATTR) == b"y"
    assert (tmp_path / "opq/new").read_bytes() == b"n"
    assert not os.path.lexists(tmp_path / "etc/.wh.passwd")
    assert not os.path.lexists(tmp_path / "x/.wh..wh.plnk")
    assert sorted(r.whiteouts) == ["etc/passwd", "gone"]
    assert r.opaque_dirs == ["opq"]
    assert r.pending_whiteouts == [] and r.pending_opaques == []


def test_whiteouts_recorded_when_unprivileged(tmp_path):
    # PENDING-WHITEOUT marker: without root, whiteouts are recorded, not created
    r = unpack(whiteout_tar(), tmp_path, privileged=False)
    assert sorted(r.pending_whiteouts) == ["etc/passwd", "gone"]
    assert r.pending_opaques == ["opq"]
    assert not os.path.lexists(tmp_path / "etc/passwd")
    assert not os.path.lexists(tmp_path / "etc/.wh.passwd")
    assert (tmp_path / "opq/new").read_bytes() == b"n"


# ----------------------------------------------------------------- broken input


def test_garbage_is_invalid(tmp_path):
    with pytest.raises(InvalidArgument):
        unpack(b"this is not a tar archive" * 100, tmp_path)
    with pytest.raises(InvalidArgument):
        unpack(b"", tmp_path)
    with pytest.raises(InvalidArgument):
        unpack(b"\x1f\x8b\x08\x00garbage-gzip", tmp_path)


def test_truncated_tar_is_invalid(tmp_path):
    data = make_tar([E("big", data=b"x" * 100000)])
    with pytest.raises(InvalidArgument):
        unpack(data[:5000], tmp_path)


def test_zstd_garbage_is_invalid(tmp_path):
    # zstd is supported: a frame header followed by junk is a corrupt layer
    with pytest.raises(InvalidArgument):
        unpack(b"\x28\xb5\x2f\xfd" + b"\0" * 100, tmp_path)


def test_non_seekable_stream(tmp_path):
    data = gzip.compress(make_tar([E("a", data=b"hello")]))

    class Pipe:
        def __init__(self, b):
            self.b = io.BytesIO(b)

        def read(self, n=-1):
            return self.b.read(min(n, 7) if n and n > 0 else n)  # short reads

    r = unpack_layer(Pipe(data), str(tmp_path))
    assert (tmp_path / "a").read_bytes() == b"hello"
    assert r.compression == "gzip"


def test_busybox_rootfs(tmp_path, busybox_tar):
    with open(busybox_tar, "rb") as f:
        r = unpack_layer(f, str(tmp_path))
    assert os.path.islink(tmp_path / "bin/sh") and os.readlink(tmp_path / "bin/sh") == "busybox"
    assert stat.S_IMODE(os.lstat(tmp_path / "tmp").st_mode) == 0o1777
    assert os.lstat(tmp_path / "bin/busybox").st_mtime == MTIME
    assert r.size == os.path.getsize("/usr/bin/busybox") + sum(
        os.path.getsize(tmp_path / "etc" / n) for n in ("passwd", "group", "hostname", "hosts", "resolv.conf"))
