"""The pure part of volumes and mounts (actors.volumes): names, Docker's
parsing of Binds / Mounts / Tmpfs / Config.Volumes, the OCI mounts, the
store on disk and the copy-up from image layers.  No daemon, no root."""

from __future__ import annotations

import json
import os

import pytest

from actors import volumes as V


def test_names():
    for ok in ("ab", "a1", "my_vol.x-1", "0" * 64):
        V.validate_name(ok)
    for bad in ("a", "../x", ".x", "_x", "-x", "a/b", "a b", "", "x:y", "é1"):
        with pytest.raises(V.VolumeError) as ei:
            V.validate_name(bad)
        assert ei.value.status == 400
        assert ei.value.message == (
            f'create {bad}: "{bad}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
            "use absolute path")
    n = V.anonymous_name()
    assert len(n) == 64 and int(n, 16) >= 0


def public(mp):
    return {k: v for k, v in mp.items() if not k.startswith("_")}


def test_parse_bind():
    mp = V.parse_bind("/h/../h2/:/c/./d:ro")
    assert public(mp) == {"Type": "bind", "Source": "/h2", "Destination": "/c/d", "Name": "",
                          "RW": False, "Mode": "ro", "Propagation": "rprivate", "Driver": ""}
    mp = V.parse_bind("/h:/c:rw,rslave")
    assert mp["RW"] and mp["Propagation"] == "rslave" and mp["Mode"] == "rw,rslave"
    mp = V.parse_bind("data:/d")
    assert public(mp) == {"Type": "volume", "Source": "", "Destination": "/d", "Name": "data",
                          "RW": True, "Mode": "z", "Propagation": "", "Driver": "local"}
    assert mp["_copy"] and not mp["_anonymous"]
    assert V.parse_bind("data:/d:nocopy")["_copy"] is False
    anon = V.parse_bind("/only")
    assert anon["Type"] == "volume" and anon["_anonymous"] and len(anon["Name"]) == 64
    assert anon["_labels"] == {V.ANONYMOUS_LABEL: ""}
    # a relative "host path" is a volume name (refused when the volume is made)
    assert V.parse_bind("rel/p:/x")["Name"] == "rel/p"
    for raw, msg in ((":/x", "invalid volume specification: ':/x'"),
                     ("/a:ro", "invalid volume specification: '/a:ro'"),
                     ("/a:/b:c:d", "invalid volume specification: '/a:/b:c:d'"),
                     ("/a:/b:bogus", "invalid mode: bogus"),
                     ("/a:/b:ro,rw", "invalid mode: ro,rw"),
                     ("/a:/", "invalid volume specification: '/a:/': invalid mount config for type "
                              "\"bind\": invalid specification: destination can't be '/'"),
                     ("/a:rel", "invalid volume specification: '/a:rel': invalid mount config for "
                                "type \"bind\": invalid mount path: 'rel' mount path must be absolute")):
        with pytest.raises(V.VolumeError) as ei:
            V.parse_bind(raw)
        assert ei.value.message == msg, raw
    with pytest.raises(V.VolumeError):
        V.parse_bind("v:/x", "flocker")


def test_parse_mount():
    exists = {"/here"}.__contains__
    mp = V.parse_mount({"Type": "bind", "Source": "/here", "Target": "/t", "ReadOnly": True,
                        "BindOptions": {"Propagation": "rshared"}}, source_exists=exists)
    assert public(mp) == {"Type": "bind", "Source": "/here", "Destination": "/t", "Name": "",
                          "RW": False, "Mode": "", "Propagation": "rshared", "Driver": ""}
    mp = V.parse_mount({"Type": "volume", "Target": "/v", "VolumeOptions": {"NoCopy": True,
                                                                           "Labels": {"a": "b"}}})
    assert mp["_anonymous"] and not mp["_copy"]
    assert mp["_labels"] == {"a": "b", V.ANONYMOUS_LABEL: ""}
    assert V.parse_mount({"Type": "volume", "Source": "nv", "Target": "/v"})["Mode"] == ""
    mp = V.parse_mount({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 3 << 20,
                                                                         "Mode": 0o1777}})
    assert mp["_data"] == ["mode=1777", "size=3m"]
    cases = [
        ({"Type": "bind", "Source": "/nope", "Target": "/t"},
         'invalid mount config for type "bind": bind source path does not exist: /nope'),
        ({"Type": "bind", "Target": "/t"}, 'invalid mount config for type "bind": field Source must not be empty'),
        ({"Type": "bind", "Source": "rel", "Target": "/t"},
         "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"),
        ({"Type": "volume", "Source": "v"}, 'invalid mount config for type "volume": field Target must not be empty'),
        ({"Type": "volume", "Target": "/x", "ReadOnly": True},
         'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes'),
        ({"Type": "volume", "Source": "v", "Target": "/x", "BindOptions": {}},
         'invalid mount config for type "volume": field BindOptions must not be specified'),
        ({"Type": "tmpfs", "Source": "x", "Target": "/x"},
         'invalid mount config for type "tmpfs": field Source must not be specified'),
        ({"Type": "npipe", "Source": "x", "Target": "/x"}, 'invalid mount config for type "npipe": mount type unknown'),
        ({"Type": "bind", "Source": "/here", "Target": "/x", "BindOptions": {"Propagation": "weird"}},
         'invalid mount config for type "bind": invalid propagation mode: weird'),
    ]
    for m, msg in cases:
        with pytest.raises(V.VolumeError) as ei:
            V.parse_mount(m, source_exists=exists)
        assert ei.value.message == msg, m


def test_plan_mounts_duplicates_and_config_volumes():
    hc = {"Binds": ["v1:/a", "/h:/b"], "Tmpfs": {"/t": "size=1m"}}
    pts = V.plan_mounts(hc, {"/a": {}, "/c": {}, "/t": {}})
    assert [(p["Type"], p["Destination"]) for p in pts] == [("volume", "/a"), ("bind", "/b"),
                                                            ("volume", "/c")]
    assert pts[2]["_anonymous"] and pts[2]["Mode"] == ""
    for hc, msg in (({"Binds": ["/a:/x", "v:/x/"]}, "Duplicate mount point: /x"),
                    ({"Binds": ["/a:/x"], "Tmpfs": {"/x": ""}}, "Duplicate mount point: /x"),
                    ({"VolumeDriver": "nfs"}, None)):
        with pytest.raises(V.VolumeError) as ei:
            V.plan_mounts(hc, None)
        if msg:
            assert ei.value.message == msg
    with pytest.raises(V.VolumeError):
        V.plan_mounts({}, {"rel": {}})


def test_oci_mounts(tmp_path):
    made = tmp_path / "made"
    rec = {"HostConfig": {"Binds": [f"{made}:/m"], "Tmpfs": {"/run": "size=64m,exec"},
                          "Mounts": [{"Type": "bind", "Source": "/src", "Target": "/nr",
                                      "BindOptions": {"NonRecursive": True}},
                                     {"Type": "tmpfs", "Target": "/tt", "ReadOnly": True,
                                      "TmpfsOptions": {"SizeBytes": 1 << 20}}]},
           "Mounts": [{"Type": "bind", "Source": str(made), "Destination": "/m", "Mode": "",
                       "RW": True, "Propagation": "rprivate"},
                      {"Type": "bind", "Source": "/src", "Destination": "/nr", "Mode": "",
                       "RW": False, "Propagation": "rslave"},
                      {"Type": "volume", "Name": "v", "Source": "/vols/v/_data", "Destination": "/v",
                       "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""},
                      {"Type": "tmpfs", "Source": "", "Destination": "/tt", "Mode": "", "RW": False,
                       "Propagation": ""}]}
    assert V.oci_mounts(rec) == [
        {"destination": "/m", "type": "bind", "source": str(made), "options": ["rbind", "rprivate"]},
        {"destination": "/nr", "type": "bind", "source": "/src", "options": ["bind", "ro", "rslave"]},
        {"destination": "/v", "type": "bind", "source": "/vols/v/_data", "options": ["rbind"]},
        {"destination": "/tt", "type": "tmpfs", "source": "tmpfs",
         "options": ["noexec", "nosuid", "nodev", "rprivate", "ro", "size=1m"]},
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
         "options": ["noexec", "nosuid", "nodev", "rprivate", "size=64m", "exec"]},
    ]
    assert made.is_dir()  # a Binds source is made at start, as dockerd does


def test_store_create_reload_detach(tmp_path):
    st = V.VolumeStore(str(tmp_path))
    vol, created = st.create("data1", labels={"a": "b"})
    assert created and vol["Mountpoint"] == str(tmp_path / "volumes" / "data1" / "_data")
    assert vol["Labels"] == {"a": "b"} and vol["Options"] is None and vol["Scope"] == "local"
    again, created = st.create("data1", labels={"x": "y"})
    assert not created and again == vol
    with pytest.raises(V.VolumeError):
        st.create("d2", options={"type": "tmpfs"})
    with pytest.raises(V.VolumeError):
        st.create("d2", driver="nfs")
    with pytest.raises(V.VolumeError):
        st.create("../escape")
    assert sorted(os.listdir(tmp_path / "volumes")) == ["data1"]
    (tmp_path / "volumes" / ".trash-old-1234").mkdir()  # a removal cut short
    st2 = V.VolumeStore(str(tmp_path))
    assert st2.volumes == st.volumes
    assert not (tmp_path / "volumes" / ".trash-old-1234").exists()
    trash = st2.detach("data1")
    assert "data1" not in st2.volumes and os.path.isdir(trash)
    V.delete_tree(trash)
    assert os.listdir(tmp_path / "volumes") == []
    with pytest.raises(V.VolumeError) as ei:
        st2.get("data1")
    assert ei.value.status == 404 and ei.value.message == "get data1: no such volume"


def test_filters():
    vol = {"Name": "web-data", "Driver": "local", "Labels": {"a": "1", "b": ""}}
    assert V.volume_matches(vol, {"name": ["data"]}, False)
    assert not V.volume_matches(vol, {"name": ["x"]}, False)
    assert V.volume_matches(vol, {"label": ["a=1", "b"]}, True)
    assert not V.volume_matches(vol, {"label": ["a=2"]}, True)
    assert not V.volume_matches(vol, {"label!": ["a"]}, True)
    assert V.volume_matches(vol, {"dangling": ["true"]}, False)
    assert not V.volume_matches(vol, {"dangling": ["1"]}, True)
    assert V.volume_matches(vol, {"driver": ["local"]}, True)
    with pytest.raises(V.VolumeError):
        V.volume_matches(vol, {"dangling": ["maybe"]}, True)


def _layer(root, name, files, meta=None):
    fs = root / name / "fs"
    fs.mkdir(parents=True)
    for rel, content in files.items():
        p = fs / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            p.mkdir(exist_ok=True)
        elif isinstance(content, tuple):
            os.symlink(content[1], p)
        else:
            p.write_text(content)
    if meta:
        (root / name / "meta.json").write_text(json.dumps(meta))
    return str(fs)


def test_copy_up_merges_layers(tmp_path):
    low = _layer(tmp_path, "l1", {"data/a": "a1", "data/b": "b", "data/sub/deep": "d",
                                  "data/old/x": "x", "etc/f": "f", "other": "o"})
    os.chmod(os.path.join(low, "data", "a"), 0o640)
    up = _layer(tmp_path, "l2", {"data/a": "a2", "data/old": None, "data/new": "n",
                                 "data/ln": ("link", "../../../../etc/f"), "var/run": ("link", "/data")},
                meta={"pending_whiteouts": ["data/b"], "pending_opaques": ["data/old"]})
    os.chmod(os.path.join(up, "data"), 0o750)
    vol = tmp_path / "vol"
    vol.mkdir()
    assert V.copy_up([low, up], "/var/run", str(vol))  # a symlink in the image, followed inside it
    assert sorted(os.listdir(vol)) == ["a", "ln", "new", "old", "sub"]
    assert (vol / "a").read_text() == "a2"
    assert os.listdir(vol / "old") == []  # opaque in the upper layer
    assert (vol / "sub" / "deep").read_text() == "d"
    assert os.readlink(vol / "ln") == "../../../../etc/f"  # copied as a link, never followed
    assert os.stat(vol).st_mode & 0o777 == 0o750  # the volume root takes the image dir's mode
    # only into an empty volume
    (vol / "a").write_text("changed")
    assert not V.copy_up([low, up], "/data", str(vol))
    assert (vol / "a").read_text() == "changed"
    # nothing in the image there: nothing to do
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not V.copy_up([low, up], "/nowhere", str(empty))
    with pytest.raises(V.VolumeError) as ei:
        V.copy_up([low, up], "/other", str(empty))
    assert "cannot mount volume over existing file" in ei.value.message


def test_copy_up_never_writes_through_a_link(tmp_path):
    low = _layer(tmp_path, "l1", {"data/d/f": "x"})
    vol = tmp_path / "vol"
    vol.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, vol / "d")  # a hostile volume content appears before the copy
    assert not V.copy_up([low], "/data", str(vol))  # not empty: left alone
    os.unlink(vol / "d")
    os.symlink(outside, tmp_path / "vlink")
    with pytest.raises(OSError):
        V.copy_up([low], "/data", str(tmp_path / "vlink"))  # the mountpoint itself a link
    assert os.listdir(outside) == []
