import io
import json
import os
import resource

import pytest

from oci.errors import InvalidSpec, UserNotFound
from oci.seccomp import default_profile, default_seccomp, from_profile
from oci.spec import (DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, ContainerSpecInput,
                      LayeredFS, build_spec, capabilities, container_env, merge_config,
                      merge_env, resolve_command, resolve_user)
from oci.unpack import unpack_layer
from tests.helpers.images import make_tar, tar_entry as E

SPECS = "/work/shared/specs"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, trusted.* xattrs)")
DPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CID = "0123456789ab" + "c" * 52


def spec(**kw):
    kw.setdefault("container_id", CID)
    kw.setdefault("image_config", {"config": {"Cmd": ["sh"]}})
    return build_spec(ContainerSpecInput(**kw))


@pytest.fixture(scope="module")
def bb_layers(tmp_path_factory, busybox_tar):
    d = tmp_path_factory.mktemp("bblayer") / "fs"
    d.mkdir()
    with open(busybox_tar, "rb") as f:
        unpack_layer(f, str(d))
    return [str(d)]


def layer(tmp_path, name, entries, privileged=None):
    d = tmp_path / name / "fs"
    d.mkdir(parents=True)
    r = unpack_layer(io.BytesIO(make_tar(entries)), str(d), privileged=privileged)
    (tmp_path / name / "meta.json").write_text(json.dumps(
        {"pending_whiteouts": r.pending_whiteouts, "pending_opaques": r.pending_opaques}))
    return str(d)


# ----------------------------------------------------------------- command


IMG_CMD = {"config": {"Cmd": ["sh", "-c", "echo hi"]}}
IMG_EP = {"config": {"Entrypoint": ["/entry"], "Cmd": ["default"]}}


@pytest.mark.parametrize("img,cmd,ep,want", [
    (IMG_CMD, None, None, ["sh", "-c", "echo hi"]),
    (IMG_CMD, ["ls", "-l"], None, ["ls", "-l"]),                  # run args replace Cmd
    (IMG_EP, None, None, ["/entry", "default"]),
    (IMG_EP, ["x"], None, ["/entry", "x"]),                        # args go after Entrypoint
    (IMG_EP, None, ["/other"], ["/other"]),                         # --entrypoint drops Cmd
    (IMG_EP, ["a"], ["/other", "-v"], ["/other", "-v", "a"]),
    (IMG_EP, ["echo", "hi"], [""], ["echo", "hi"]),                # --entrypoint "" resets
    (IMG_CMD, None, [], ["sh", "-c", "echo hi"]),                  # [] behaves like unset for Cmd
    ({"Cmd": ["bare"]}, None, None, ["bare"]),                      # bare container config
])
def test_command_resolution(img, cmd, ep, want):
    assert resolve_command(img, cmd, ep) == want
    assert spec(image_config=img, cmd=cmd, entrypoint=ep)["process"]["args"] == want


@pytest.mark.parametrize("img,cmd,ep", [
    ({"config": {}}, None, None),
    ({}, None, None),
    (IMG_EP, None, [""]),
    ({"config": {"Cmd": []}}, [], None),
])
def test_no_command(img, cmd, ep):
    with pytest.raises(InvalidSpec) as ei:
        spec(image_config=img, cmd=cmd, entrypoint=ep)
    assert str(ei.value) == "No command specified"


def test_merge_config():
    img = {"config": {"Env": ["A=1", "PATH=/img"], "Cmd": ["c"], "Entrypoint": ["e"],
                      "WorkingDir": "/w", "User": "app", "Labels": {"l": "1", "m": "1"},
                      "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/v": {}}, "StopSignal": "SIGINT"}}
    m = merge_config({"Env": ["A=2", "B=3"], "Labels": {"m": "2"}}, img)
    assert m["Env"] == ["A=2", "B=3", "PATH=/img"]
    assert (m["Cmd"], m["Entrypoint"]) == (["c"], ["e"])
    assert m["WorkingDir"] == "/w" and m["User"] == "app" and m["StopSignal"] == "SIGINT"
    assert m["Labels"] == {"l": "1", "m": "2"} and m["ExposedPorts"] == {"80/tcp": {}}
    m = merge_config({"Entrypoint": ["x"]}, img)
    assert (m["Entrypoint"], m["Cmd"]) == (["x"], None)
    m = merge_config({"Entrypoint": [""], "Cmd": ["y"]}, img)
    assert (m["Entrypoint"], m["Cmd"]) == (None, ["y"])
    with pytest.raises(InvalidSpec, match="^No command specified$"):
        merge_config({"Entrypoint": [""]}, img)
    with pytest.raises(InvalidSpec, match="the working directory 'rel' is invalid, it needs to be an absolute path"):
        merge_config({"WorkingDir": "rel"}, img)


# ----------------------------------------------------------------- env, cwd


def test_env():
    s = spec(image_config={"config": {"Cmd": ["sh"], "Env": ["A=img", "KEEP=1", "PATH=/img/bin"]}},
             env=["A=run", "NEW=x"], hostname="myhost")
    assert s["process"]["env"] == ["PATH=/img/bin", "HOSTNAME=myhost", "A=run", "NEW=x", "KEEP=1",
                                   "HOME=/"]
    s = spec(tty=True)
    assert s["process"]["env"][:3] == [DPATH, f"HOSTNAME={CID[:12]}", "TERM=xterm"]
    assert s["process"]["terminal"] is True
    assert merge_env(["A=1", "B=2"], ["B=3"]) == ["B=3", "A=1"]
    assert container_env(["UNSET_ME", "X=1"], "h", False) == [DPATH, "HOSTNAME=h", "X=1"]
    assert container_env(["HOSTNAME"], "h", False) == [DPATH]
    assert "HOME=/custom" in spec(env=["HOME=/custom"])["process"]["env"]


def test_cwd():
    assert spec()["process"]["cwd"] == "/"
    assert spec(image_config={"config": {"Cmd": ["x"], "WorkingDir": "/img"}})["process"]["cwd"] == "/img"
    assert spec(image_config={"config": {"Cmd": ["x"], "WorkingDir": "/img"}},
                workdir="/run/")["process"]["cwd"] == "/run"
    with pytest.raises(InvalidSpec, match="needs to be an absolute path"):
        spec(workdir="relative")


# ----------------------------------------------------------------- users


@pytest.mark.parametrize("user,uid,gid,home", [
    ("", 0, 0, "/root"), ("root", 0, 0, "/root"), ("app", 1000, 1000, "/home/app"),
    ("nobody", 65534, 65534, "/home"), ("1000", 1000, 1000, "/home/app"),
    ("4242", 4242, 0, "/"), ("app:root", 1000, 0, "/home/app"), ("app:4321", 1000, 4321, "/home/app"),
    ("4242:4242", 4242, 4242, "/"), ("0:nobody", 0, 65534, "/root"),
])
def test_resolve_user_busybox(bb_layers, user, uid, gid, home):
    u = resolve_user(user, bb_layers)
    assert (u.uid, u.gid, u.home) == (uid, gid, home)
    s = spec(user=user, layer_dirs=bb_layers)
    assert s["process"]["user"]["uid"] == uid and s["process"]["user"]["gid"] == gid
    assert f"HOME={home}" in s["process"]["env"]


def test_image_user_and_override(bb_layers):
    img = {"config": {"Cmd": ["sh"], "User": "app"}}
    assert spec(image_config=img, layer_dirs=bb_layers)["process"]["user"]["uid"] == 1000
    assert spec(image_config=img, layer_dirs=bb_layers, user="0")["process"]["user"]["uid"] == 0


def test_unknown_user_and_group(bb_layers):
    with pytest.raises(UserNotFound) as ei:
        spec(user="nobody2", layer_dirs=bb_layers)
    assert str(ei.value) == "unable to find user nobody2: no matching entries in passwd file"
    with pytest.raises(UserNotFound, match="^unable to find group nogroup: no matching entries in group file$"):
        resolve_user("app:nogroup", bb_layers)
    # no passwd at all: names fail, numbers work
    with pytest.raises(UserNotFound, match="unable to find user app"):
        resolve_user("app", [])
    assert resolve_user("12:34", []).uid == 12 and resolve_user("12:34", []).gid == 34


def test_supplementary_groups(tmp_path):
    l0 = layer(tmp_path, "l0", [
        E("etc", "dir"),
        E("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n"),
        E("etc/group", data=b"root:x:0:\nbob:x:1001:\nwheel:x:10:root,bob\naudio:x:29:bob\nvideo:x:44:\n"),
    ])
    u = resolve_user("bob", [l0])
    assert (u.uid, u.gid, u.additional_gids) == (1001, 1001, [10, 29])
    assert resolve_user("bob:video", [l0]).additional_gids == []  # explicit group: none
    assert resolve_user("root", [l0]).additional_gids == [10]
    u = resolve_user("bob", [l0], group_add=["video", "777"])
    assert u.additional_gids == [10, 29, 44, 777]
    s = spec(user="bob", layer_dirs=[l0], group_add=["video"])
    assert s["process"]["user"] == {"uid": 1001, "gid": 1001, "additionalGids": [10, 29, 44]}
    assert "additionalGids" not in spec(user="1001:1001", layer_dirs=[])["process"]["user"]


def _passwd(name):
    return f"root:x:0:0::/root:/bin/sh\n{name}:x:2000:2000::/home/{name}:/bin/sh\n".encode()


def test_layers_top_first(tmp_path):
    l0 = layer(tmp_path, "l0", [E("etc", "dir"), E("etc/passwd", data=_passwd("lower")),
                                E("etc/group", data=b"root:x:0:\ng:x:5:lower\n")])
    l1 = layer(tmp_path, "l1", [E("etc", "dir"), E("etc/passwd", data=_passwd("upper"))])
    assert resolve_user("upper", [l0, l1]).uid == 2000
    with pytest.raises(UserNotFound):
        resolve_user("lower", [l0, l1])
    # the group file still comes from the lower layer
    assert LayeredFS([l0, l1]).read_file("/etc/group") == b"root:x:0:\ng:x:5:lower\n"


@pytest.mark.parametrize("privileged", [
    pytest.param(True, marks=needs_root), False])
def test_whiteouts_hide_lower_layers(tmp_path, privileged):
    l0 = layer(tmp_path, "l0", [E("etc", "dir"), E("etc/passwd", data=_passwd("lower")),
                                E("etc/group", data=b"root:x:0:\n"), E("d", "dir"),
                                E("d/f", data=b"x")], privileged)
    l1 = layer(tmp_path, "l1", [E("etc", "dir"), E("etc/.wh.passwd", data=b""), E(".wh.d", data=b"")],
               privileged)
    fs = LayeredFS([l0, l1])
    assert fs.read_file("/etc/passwd") is None
    assert fs.read_file("/d/f") is None
    assert fs.read_file("/etc/group") == b"root:x:0:\n"
    with pytest.raises(UserNotFound):
        resolve_user("lower", [l0, l1])
    # opaque directory: the lower /etc disappears except what the upper layer has
    l2 = layer(tmp_path, "l2", [E("etc", "dir"), E("etc/.wh..wh..opq", data=b""),
                                E("etc/passwd", data=_passwd("opq"))], privileged)
    fs = LayeredFS([l0, l2])
    assert fs.read_file("/etc/group") is None
    assert resolve_user("opq", [l0, l2]).uid == 2000


def test_symlinked_passwd(tmp_path):
    l0 = layer(tmp_path, "l0", [E("usr", "dir"), E("usr/lib", "dir"),
                                E("usr/lib/passwd", data=_passwd("linked")),
                                E("etc", "symlink", linkname="usr/lib"),
                                E("lib", "symlink", linkname="/usr/lib")])
    l1 = layer(tmp_path, "l1", [E("usr", "dir"), E("usr/lib", "dir"),
                                E("usr/lib/group", "symlink", linkname="../../lib/passwd")])
    fs = LayeredFS([l0, l1])
    assert fs.read_file("/etc/passwd") == _passwd("linked")
    assert fs.read_file("etc/group") == _passwd("linked")
    assert resolve_user("linked", [l0, l1]).uid == 2000
    loop = layer(tmp_path, "loop", [E("a", "symlink", linkname="b"), E("b", "symlink", linkname="a")])
    assert LayeredFS([loop]).read_file("/a") is None


def test_layered_fs_never_leaves_the_layers(tmp_path):
    l0 = layer(tmp_path, "l0", [E("etc", "dir"), E("etc/passwd", "symlink", linkname="/../../../../../etc/shadow"),
                                E("etc/group", "symlink", linkname="../../../../../../../../etc/hostname")])
    fs = LayeredFS([l0])
    assert fs.read_file("/etc/passwd") is None
    assert fs.read_file("/etc/group") is None


# ----------------------------------------------------------------- docker defaults


def test_docker_defaults():
    s = spec()
    assert s["ociVersion"] == "1.0.2"
    caps = s["process"]["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}
    for k in caps:
        assert caps[k] == DEFAULT_CAPABILITIES
    assert DEFAULT_CAPABILITIES == [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
    assert s["process"]["noNewPrivileges"] is False and s["process"]["terminal"] is False
    assert s["linux"]["maskedPaths"] == [
        "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
        "/sys/firmware", "/sys/devices/virtual/powercap"] == MASKED_PATHS
    assert s["linux"]["readonlyPaths"] == [
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"] == READONLY_PATHS
    assert [n["type"] for n in s["linux"]["namespaces"]] == ["mount", "network", "uts", "pid", "ipc", "cgroup"]
    assert s["linux"]["cgroupsPath"] == f"/trioctr/{CID}"
    assert s["root"] == {"path": "rootfs", "readonly": False}
    assert s["hostname"] == CID[:12]
    assert s["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    m = {x["destination"]: x for x in s["mounts"]}
    assert list(m) == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert m["/proc"]["type"] == "proc"
    assert m["/dev"] == {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
    assert m["/dev/pts"]["options"] == ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    assert m["/sys"]["type"] == "sysfs" and "ro" in m["/sys"]["options"]
    assert m["/sys/fs/cgroup"]["type"] == "cgroup" and "ro" in m["/sys/fs/cgroup"]["options"]
    assert m["/dev/mqueue"]["type"] == "mqueue"
    assert m["/dev/shm"]["options"] == ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
    json.dumps(s)


def test_rlimits_follow_the_host():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = 1048576 if hard == resource.RLIM_INFINITY or hard >= 1048576 else hard
    assert spec()["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": want, "soft": want}]
    r = spec(ulimits=[{"Name": "nofile", "Soft": 10, "Hard": 20}, {"Name": "nproc", "Soft": 5, "Hard": 5}])
    assert r["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 20, "soft": 10},
                                       {"type": "RLIMIT_NPROC", "hard": 5, "soft": 5}]
    with pytest.raises(InvalidSpec):
        spec(ulimits=[{"Name": "bogus"}])


def test_bind_mounts_and_readonly():
    s = spec(hostname_path="/c/hostname", hosts_path="/c/hosts", resolv_conf_path="/c/resolv.conf")
    binds = [m for m in s["mounts"] if m["type"] == "bind"]
    assert binds == [
        {"destination": "/etc/resolv.conf", "type": "bind", "source": "/c/resolv.conf", "options": ["rbind", "rprivate"]},
        {"destination": "/etc/hostname", "type": "bind", "source": "/c/hostname", "options": ["rbind", "rprivate"]},
        {"destination": "/etc/hosts", "type": "bind", "source": "/c/hosts", "options": ["rbind", "rprivate"]}]
    s = spec(hosts_path="/c/hosts", readonly_rootfs=True)
    assert s["root"]["readonly"] is True
    assert [m for m in s["mounts"] if m["type"] == "bind"][0]["options"] == ["rbind", "rprivate", "ro"]
    user = [{"destination": "/dev/shm", "type": "bind", "source": "/host/shm", "options": ["rbind"]},
            {"destination": "/data/x", "type": "bind", "source": "/a", "options": ["rbind"]},
            {"destination": "/data", "type": "bind", "source": "/b", "options": ["rbind"]}]
    s = spec(mounts=user)
    dsts = [m["destination"] for m in s["mounts"]]
    assert dsts.count("/dev/shm") == 1 and dsts[-3:] == ["/data", "/dev/shm", "/data/x"]  # by depth, stable


def test_resources():
    r = spec(memory=512 * 1024 ** 2, pids_limit=100, cpu_shares=512, nano_cpus=1_500_000_000,
             cgroup_parent="/my/parent/")["linux"]
    assert r["cgroupsPath"] == f"/my/parent/{CID}"
    res = r["resources"]
    assert res["memory"] == {"limit": 512 * 1024 ** 2, "swap": 1024 * 1024 ** 2}  # default 2x
    assert res["pids"] == {"limit": 100}
    assert res["cpu"] == {"shares": 512, "period": 100000, "quota": 150000}
    res = spec(memory=64 * 1024 ** 2, memory_swap=-1)["linux"]["resources"]
    assert res["memory"] == {"limit": 64 * 1024 ** 2}
    res = spec(memory=64 * 1024 ** 2, memory_swap=128 * 1024 ** 2)["linux"]["resources"]
    assert res["memory"]["swap"] == 128 * 1024 ** 2
    res = spec()["linux"]["resources"]
    assert set(res) == {"devices"}
    assert spec(pids_limit=-1)["linux"]["resources"].get("pids") is None
    assert spec(cpu_quota=50000, cpu_period=100000)["linux"]["resources"]["cpu"] == {"quota": 50000, "period": 100000}
    with pytest.raises(InvalidSpec, match="Conflicting options"):
        spec(nano_cpus=1, cpu_quota=1)


def test_capabilities_tweaks():
    assert capabilities(["NET_ADMIN"], ["chown"]) == [c for c in DEFAULT_CAPABILITIES if c != "CAP_CHOWN"] + ["CAP_NET_ADMIN"]
    assert capabilities([], ["ALL"]) == []
    assert capabilities(["CAP_KILL"], ["ALL"]) == ["CAP_KILL"]
    assert "CAP_SYS_ADMIN" in capabilities(["ALL"], ["MKNOD"]) and "CAP_MKNOD" not in capabilities(["ALL"], ["MKNOD"])
    with pytest.raises(InvalidSpec, match='unknown capability: "CAP_BOGUS"'):
        capabilities(["bogus"])
    s = spec(cap_add=["SYS_ADMIN"])
    assert "CAP_SYS_ADMIN" in s["process"]["capabilities"]["effective"]


def test_namespaces_and_hostname():
    s = spec(namespaces={"mount": "", "network": "/proc/1234/ns/net", "pid": ""})
    assert s["linux"]["namespaces"] == [{"type": "mount"}, {"type": "network", "path": "/proc/1234/ns/net"},
                                        {"type": "pid"}]
    assert "hostname" not in s  # no private UTS namespace: no hostname
    assert spec(hostname="web", domainname="example.com")["domainname"] == "example.com"
    with pytest.raises(InvalidSpec):
        spec(namespaces={"bogus": ""})


def test_annotations_console_and_misc():
    s = spec(annotations={"a": "b"}, tty=True, console_size=(24, 80), no_new_privileges=True,
             sysctls={"net.ipv4.ip_forward": 1}, rootfs="/abs/rootfs")
    assert s["annotations"] == {"a": "b"}
    assert s["process"]["consoleSize"] == {"height": 24, "width": 80}
    assert s["process"]["noNewPrivileges"] is True
    assert s["linux"]["sysctl"] == {"net.ipv4.ip_forward": "1"}
    assert s["root"]["path"] == "/abs/rootfs"


def test_seccomp():
    sc = default_seccomp(DEFAULT_CAPABILITIES, arch="amd64")
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO" and sc["defaultErrnoRet"] == 1
    assert sc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = {n for s in sc["syscalls"] for n in s["names"]}
    assert "read" in names and "mount" not in names and "chroot" in names
    assert "arch_prctl" in names  # amd64-only group
    admin = default_seccomp(DEFAULT_CAPABILITIES + ["CAP_SYS_ADMIN"], arch="amd64")
    assert "mount" in {n for s in admin["syscalls"] for n in s["names"]}
    arm = from_profile(default_profile(), DEFAULT_CAPABILITIES, arch="arm64")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in {n for s in arm["syscalls"] for n in s["names"]}
    s = spec(seccomp=sc)
    assert s["linux"]["seccomp"] is sc


# ----------------------------------------------------------------- schema


def _validator(schema_path):
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT4
    if not os.path.exists(schema_path):
        pytest.skip("spec schemas not available")
    base = os.path.dirname(schema_path)

    def retrieve(uri):
        name = uri.rsplit("/", 1)[-1]
        with open(os.path.join(base, name)) as f:
            return referencing.Resource.from_contents(json.load(f), default_specification=DRAFT4)

    with open(schema_path) as f:
        schema = json.load(f)
    schema["id"] = "file://" + schema_path
    registry = referencing.Registry(retrieve=retrieve)
    return jsonschema.Draft4Validator(schema, registry=registry)


def test_spec_validates_against_oci_runtime_schema(bb_layers):
    v = _validator(os.path.join(SPECS, "oci-runtime", "config-schema.json"))
    s = spec(user="app", layer_dirs=bb_layers, tty=True, memory=64 * 1024 ** 2, pids_limit=10,
             nano_cpus=10 ** 9, cpu_shares=100, hosts_path="/h", hostname_path="/n",
             resolv_conf_path="/r", seccomp=default_seccomp(DEFAULT_CAPABILITIES, arch="amd64"),
             console_size=(24, 80), annotations={"x": "y"})
    errors = sorted(v.iter_errors(s), key=str)
    assert errors == [], [e.message for e in errors[:5]]


def test_image_config_validates_against_oci_image_schema(store, bb):
    v = _validator(os.path.join(SPECS, "oci-image", "config-schema.json"))
    errors = list(v.iter_errors(bb.config))
    assert errors == [], [e.message for e in errors[:5]]
