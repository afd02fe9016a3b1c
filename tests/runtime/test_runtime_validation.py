"""config.json validation: the OCI version range and the types and ranges
of every field the runtime reads (checked by hand against
shared/specs/oci-runtime/config-schema.json, no jsonschema dependency).
Each refusal is one line naming the field; a refused create leaves nothing."""

from __future__ import annotations

import copy
import os

import pytest

from actors.runtime import ConfigError, Failure, default_spec, parse_signal, validate_config


def good() -> dict:
    cfg = copy.deepcopy(default_spec())
    cfg["linux"]["cgroupsPath"] = "/trioctr-test-unit/c1"
    return cfg


def refused(cfg: dict) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    msg = info.value.message
    assert msg.startswith("config.json: ") and "\n" not in msg
    return msg


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2", "1.0.2-dev", "1.1.0", "1.1.0-rc.1",
                                     "1.2.0", "1.2.1", "1.3.0", "1.3.17+build.5"])
def test_supported_oci_versions(version):
    cfg = good()
    cfg["ociVersion"] = version
    validate_config(cfg)


@pytest.mark.parametrize("version", ["2.0.0", "0.9.0", "1.4.0", "1.10.0", "1.0", "1", "v1.0.2",
                                     "1.0.02", "1.0.2 ", "latest"])
def test_unsupported_oci_versions(version):
    cfg = good()
    cfg["ociVersion"] = version
    assert refused(cfg) == f'config.json: unsupported ociVersion "{version}": want 1.0.x to 1.3.x'


def test_oci_version_message_is_exact():
    cfg = good()
    cfg["ociVersion"] = "2.0.0"
    assert refused(cfg) == 'config.json: unsupported ociVersion "2.0.0": want 1.0.x to 1.3.x'
    cfg["ociVersion"] = 1.0
    assert refused(cfg) == "config.json: ociVersion is required (a string)"


def _set(path: str, value):
    """A mutation: set the dotted ``path`` (list indexes as numbers)."""
    def mutate(cfg):
        keys = path.split(".")
        obj = cfg
        for k in keys[:-1]:
            obj = obj[int(k)] if isinstance(obj, list) else obj.setdefault(k, {})
        obj[int(keys[-1]) if isinstance(obj, list) else keys[-1]] = value
    return mutate


def _pop(path: str):
    def mutate(cfg):
        keys = path.split(".")
        obj = cfg
        for k in keys[:-1]:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        obj.pop(keys[-1])
    return mutate


@pytest.mark.parametrize("mutate, expect", [
    # wrong types, top level
    (_set("root", "rootfs"), "root must be an object"),
    (_set("root.readonly", "yes"), "root.readonly must be a boolean"),
    (_set("hostname", 7), "hostname must be a string"),
    (_set("domainname", ["x"]), "domainname must be a string"),
    (_set("mounts", {}), "mounts must be an array"),
    (_set("mounts.0", "proc"), "mounts[0] must be an object"),
    (_set("mounts.0.destination", 5), "mounts[0].destination must be a string"),
    (_set("mounts.0.type", 1), "mounts[0].type must be a string"),
    (_set("mounts.1.options", "ro"), "mounts[1].options must be an array"),
    (_set("annotations", []), "annotations must be an object"),
    (_set("annotations", {"a": 1}), "annotations['a'] must be a string"),
    (_set("hooks", []), "hooks must be an object"),
    (_set("hooks", {"prestart": [{"path": 3}]}), "hooks.prestart[0].path must be a string"),
    (_set("process", []), "process must be an object"),
    (_set("linux", []), "linux must be an object"),
    # process
    (_set("process.env", "PATH=/bin"), "process.env must be an array"),
    (_set("process.cwd", 1), "process.cwd must be a string"),
    (_pop("process.cwd"), "process.cwd must be a string"),
    (_pop("process.user"), "process.user is required"),
    (_pop("process.user.uid"), "process.user.uid is required"),
    (_set("process.user.uid", -1), "process.user.uid -1 is out of range"),
    (_set("process.user.additionalGids", [1, "2"]), "process.user.additionalGids[1] must be"),
    (_set("process.user.umask", -2), "process.user.umask -2 is out of range"),
    (_set("process.capabilities", ["CAP_KILL"]), "process.capabilities must be an object"),
    (_set("process.capabilities.bounding", "CAP_KILL"),
     "process.capabilities.bounding must be an array"),
    (_set("process.capabilities.nope", []), "process.capabilities.nope is not a capability set"),
    (_set("process.rlimits", {}), "process.rlimits must be an array"),
    (_set("process.rlimits.0.soft", -1), "process.rlimits[0].soft must be at least 0, not -1"),
    (_set("process.rlimits.0.hard", -5), "process.rlimits[0].hard must be at least 0"),
    (_set("process.rlimits.0.hard", 2**64), "process.rlimits[0].hard must be at most"),
    (_pop("process.rlimits.0.soft"), "process.rlimits[0].soft is required"),
    (_set("process.rlimits.0.soft", 2048), "soft 2048 is above hard 1024"),
    (_set("process.noNewPrivileges", 1), "process.noNewPrivileges must be a boolean"),
    (_set("process.oomScoreAdj", "0"), "process.oomScoreAdj must be an integer"),
    (_set("process.oomScoreAdj", 1001), "process.oomScoreAdj must be at most 1000"),
    (_set("process.oomScoreAdj", -1001), "process.oomScoreAdj must be at least -1000"),
    (_set("process.consoleSize", {"height": -1, "width": 80}),
     "process.consoleSize.height -1 is out of range"),
    # linux
    (_set("linux.namespaces", {"type": "pid"}), "linux.namespaces must be an array"),
    (_set("linux.namespaces.0", "pid"), "linux.namespaces[0] must be an object"),
    (_set("linux.namespaces.0.type", "pidz"), "linux.namespaces[0].type 'pidz' is not a namespace"),
    (_set("linux.namespaces.0.type", None), "linux.namespaces[0].type None is not a namespace"),
    (_set("linux.namespaces.0.path", 3), "linux.namespaces[0].path must be a string"),
    (_set("linux.namespaces.0.path", "proc/1/ns/pid"), "must be an absolute path"),
    (_set("linux.cgroupsPath", 5), "linux.cgroupsPath must be a string"),
    (_set("linux.rootfsPropagation", True), "linux.rootfsPropagation must be a string"),
    (_set("linux.sysctl", ["net.x=1"]), "linux.sysctl must be an object"),
    (_set("linux.sysctl", {"net.ipv4.ip_forward": 1}), "linux.sysctl['net.ipv4.ip_forward'] must"),
    (_set("linux.maskedPaths", "/proc/kcore"), "linux.maskedPaths must be an array"),
    (_set("linux.readonlyPaths", [1]), "linux.readonlyPaths[0] must be a string"),
    (_set("linux.devices", {}), "linux.devices must be an array"),
    (_set("linux.devices", [{"path": "/dev/x", "type": "c", "major": -1, "minor": 1}]),
     "linux.devices[0].major must be at least 0"),
    (_set("linux.devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 1,
                             "fileMode": -1}]), "linux.devices[0].fileMode must be at least 0"),
    (_set("linux.devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 1,
                             "uid": -3}]), "linux.devices[0].uid must be at least 0"),
    (_set("linux.resources", []), "linux.resources must be an object"),
    (_set("linux.resources.memory.limit", -2), "linux.resources.memory.limit must be at least -1"),
    (_set("linux.resources.memory.swap", "1"), "linux.resources.memory.swap must be an integer"),
    (_set("linux.resources.memory.swappiness", 101),
     "linux.resources.memory.swappiness must be at most 100"),
    (_set("linux.resources.memory.disableOOMKiller", "no"),
     "linux.resources.memory.disableOOMKiller must be a boolean"),
    (_set("linux.resources.cpu.shares", -1), "linux.resources.cpu.shares must be at least 0"),
    (_set("linux.resources.cpu.period", -100), "linux.resources.cpu.period must be at least 0"),
    (_set("linux.resources.cpu.quota", -5), "linux.resources.cpu.quota must be at least -1"),
    (_set("linux.resources.cpu.cpus", 3), "linux.resources.cpu.cpus must be a string"),
    (_set("linux.resources.pids.limit", -7), "linux.resources.pids.limit must be at least -1"),
    (_set("linux.resources.pids", 5), "linux.resources.pids must be an object"),
    (_set("linux.resources.devices", {}), "linux.resources.devices must be an array"),
    (_set("linux.resources.devices.0.allow", "yes"),
     "linux.resources.devices[0].allow must be a boolean"),
    (_set("linux.resources.hugepageLimits", {}), "linux.resources.hugepageLimits must be an array"),
])
def test_malformed_configs_are_refused_naming_the_field(mutate, expect):
    cfg = good()
    mutate(cfg)
    assert expect in refused(cfg)


@pytest.mark.parametrize("mutate", [
    _set("linux.resources.memory.limit", -1),  # unlimited
    _set("linux.resources.memory.swap", -1),
    _set("linux.resources.cpu.quota", -1),
    _set("linux.resources.pids.limit", -1),
    _set("linux.resources.pids.limit", 0),
    _set("process.oomScoreAdj", -1000),
    _set("process.rlimits.0.hard", 2**64 - 1),
])
def test_limits_at_the_edge_are_accepted(mutate):
    cfg = good()
    mutate(cfg)
    validate_config(cfg)


@pytest.mark.parametrize("name", ["SIGNOPE", "KILLL", "SIG", "SIGKILL9", "9x", "-1", "1.5",
                                  "RTMIN+", "RTMAX-100"])
def test_bad_signal_names_are_refused(name):
    with pytest.raises(Failure, match="invalid signal"):
        parse_signal(name)


def test_validation_accepts_the_default_spec_and_every_version_it_writes():
    cfg = good()
    assert validate_config(cfg) is cfg


# --- a refused create changes nothing (real kernel) ------------------------

def _cgroup_dirs(cgroup_parent: str, cid: str) -> list[str]:
    from tests.runtime.conftest import cgroup_hierarchy_dirs

    found = []
    for d in cgroup_hierarchy_dirs():
        p = os.path.join(d, cgroup_parent.lstrip("/"), cid)
        if os.path.exists(p):
            found.append(p)
    return found


@pytest.mark.root
@pytest.mark.parametrize("mutate, expect", [
    (_set("ociVersion", "2.0.0"), 'unsupported ociVersion "2.0.0": want 1.0.x to 1.3.x'),
    (_set("process.rlimits.0.soft", -1), "process.rlimits[0].soft must be at least 0"),
    (_set("linux.namespaces.0.type", "bogus"), "linux.namespaces[0].type 'bogus'"),
    (_set("linux.resources.pids", {"limit": -3}), "linux.resources.pids.limit must be at least -1"),
    (_pop("process.user"), "process.user is required"),
])
def test_refused_create_leaves_no_state_and_no_cgroup(rt, mutate, expect):
    cid = "badcfg"
    cfg = rt.spec(cid, ["true"])
    mutate(cfg)
    h = rt.create(cid, [], cfg=cfg)
    assert h.create_code() != 0
    err = h.stderr()
    assert expect in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert not (rt.root / cid).exists()
    assert _cgroup_dirs(rt.cgroup_parent, cid) == []
    res = rt.cmd("state", cid)
    assert res.returncode != 0


# --- every field of the schema, with the wrong type, is refused ------------------

SPEC_DIR = "/work/shared/specs/oci-runtime"
OTHER_OSES = ("solaris", "windows", "vm", "zos", "freebsd")


def _schema_fields() -> list[tuple[list, dict]]:
    """(path, schema node) for every property of config-schema.json reachable
    on Linux, with $refs resolved; arrays as index 0."""
    import json

    docs: dict = {}

    def load(name):
        if name not in docs:
            with open(os.path.join(SPEC_DIR, name)) as f:
                docs[name] = json.load(f)
        return docs[name]

    def resolve(node, base):
        while isinstance(node, dict) and "$ref" in node:
            name, _, ptr = node["$ref"].partition("#")
            base = name or base
            node = load(base)
            for part in filter(None, ptr.split("/")):
                node = node[part]
        return node, base

    out = []

    def walk(node, base, path):
        node, base = resolve(node, base)
        out.append((path, node))
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, base, path + [key])
        if node.get("type") == "array" and "items" in node:
            walk(node["items"], base, path + [0])

    walk(load("config-schema.json"), "config-schema.json", [])
    return [(p, n) for p, n in out if p and p[0] not in OTHER_OSES]


WRONG = {"string": 12345, "integer": "1", "number": "1", "boolean": "yes", "object": "x",
         "array": "x"}


def _wrong_typed_cases():
    if not os.path.isdir(SPEC_DIR):
        return []
    cases = []
    for path, node in _schema_fields():
        kind = node.get("type") or ("string" if isinstance((node.get("enum") or [0])[0], str)
                                    else None)
        if isinstance(kind, list) or kind not in WRONG:
            continue
        cases.append(pytest.param(path, WRONG[kind], id=".".join(map(str, path))))
    return cases


@pytest.mark.parametrize("path, value", _wrong_typed_cases())
def test_every_schema_field_with_a_wrong_type_is_refused(path, value):
    cfg = good()
    obj = cfg
    for key, nxt in zip(path, path[1:]):
        if isinstance(key, int):
            if not obj:
                obj.append({})
            if not isinstance(obj[0], dict):
                pytest.skip("an array of scalars")
            obj = obj[0]
        else:
            obj = obj.setdefault(key, [] if isinstance(nxt, int) else {})
            if not isinstance(obj, (dict, list)):
                pytest.skip("a scalar in the default spec")
    if isinstance(obj, list):
        pytest.skip("an array of scalars")
    obj[path[-1]] = value
    refused(cfg)
