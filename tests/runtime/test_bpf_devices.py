"""cgroup v2 device rules as an eBPF program (linux/bpf.py).

Pure: the program, interpreted, decides as the reference ``evaluate`` does
for random rule lists.  Real kernel (root, a cgroup2 hierarchy: here the
hybrid host's /sys/fs/cgroup/unified): the verifier accepts the programs,
and a process in a cgroup with the program attached opens /dev/null but
gets EPERM for a denied device.
"""

from __future__ import annotations

import os
import random
import subprocess

import pytest

from linux import bpf, cgroups
from linux import syscalls as sc

DOCKER_RULES = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},   # null
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},   # urandom
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},             # pts
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},     # zero, read only
    {"allow": False, "type": "c", "major": 1, "minor": 9, "access": "w"},    # urandom: no write
]


def _random_rule(rng: random.Random) -> dict:
    rule = {"allow": rng.random() < 0.5,
            "access": "".join(c for c in "rwm" if rng.random() < 0.6) or "r"}
    kind = rng.choice("abcc")
    if kind != "a":
        rule["type"] = kind
        if rng.random() < 0.7:
            rule["major"] = rng.choice([1, 5, 136, 2**32 - 1])
        if rng.random() < 0.5:
            rule["minor"] = rng.choice([0, 3, 9, 2**31])
    return rule


def test_program_decides_as_the_reference():
    rng = random.Random(7)
    probes = [(t, ma, mi, acc) for t in (bpf.DEV_BLOCK, bpf.DEV_CHAR)
              for ma in (1, 5, 136, 2**32 - 1) for mi in (0, 3, 9, 2**31)
              for acc in range(1, 8)]
    for _ in range(150):
        rules = [_random_rule(rng) for _ in range(rng.randint(0, 6))]
        code = bpf.device_program(rules)
        for probe in probes:
            assert bpf.run_program(code, *probe) == bpf.evaluate(rules, *probe), (rules, probe)


def test_reference_reads_rules_in_order():
    null, zero, urandom = (1, 3), (1, 5), (1, 9)
    r, w, m = bpf.ACC_READ, bpf.ACC_WRITE, bpf.ACC_MKNOD
    c = bpf.DEV_CHAR
    assert bpf.evaluate(DOCKER_RULES, c, *null, r | w)
    assert bpf.evaluate(DOCKER_RULES, c, *zero, r)
    assert not bpf.evaluate(DOCKER_RULES, c, *zero, r | w)
    assert bpf.evaluate(DOCKER_RULES, c, *urandom, r | m)
    assert not bpf.evaluate(DOCKER_RULES, c, *urandom, w)
    assert not bpf.evaluate(DOCKER_RULES, bpf.DEV_BLOCK, 8, 0, r)
    assert not bpf.evaluate([], c, *null, r)                      # nothing allowed
    assert bpf.evaluate([{"allow": True}], bpf.DEV_BLOCK, 8, 0, r | w | m)


@pytest.mark.parametrize("rule", [{"allow": True, "type": "u"},
                                  {"allow": True, "type": "c", "access": "rwx"},
                                  {"allow": True, "type": "c", "major": 2**32}])
def test_bad_rules_are_refused(rule):
    with pytest.raises(ValueError):
        bpf.device_program([rule])


def unified_root() -> str | None:
    for path in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        try:
            if sc.statfs_type(path) == sc.CGROUP2_SUPER_MAGIC:
                return path
        except OSError:
            continue
    return None


@pytest.fixture
def v2_leaf(cgroup_parent):
    root = unified_root()
    if root is None:
        pytest.skip("no cgroup2 hierarchy")
    parent = os.path.join(root, cgroup_parent.strip("/"))
    os.makedirs(parent, exist_ok=True)
    # the test parent plays the hierarchy root: nothing above it is touched
    cg = cgroups.CgroupV2(parent, os.path.join(parent, "devleaf"))
    cg.create()
    yield cg
    for pid in cg.pids():
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    cg.remove()


@pytest.mark.root
def test_verifier_accepts_every_shape():
    rng = random.Random(11)
    for rules in ([], [{"allow": True}], [{"allow": False}], DOCKER_RULES,
                  *([_random_rule(rng) for _ in range(rng.randint(1, 12))] for _ in range(30))):
        fd = bpf.load_device_program(bpf.device_program(rules))
        os.close(fd)


PROBE = ("for d in null zero urandom full; do "
         "(: < /dev/$d) 2>/dev/null && echo $d:r || echo $d:-; "
         "(: > /dev/$d) 2>/dev/null && echo $d:w || echo $d:-; done")


@pytest.mark.root
def test_attached_program_denies_with_eperm(v2_leaf):
    v2_leaf.apply({"devices": DOCKER_RULES})
    procs = os.path.join(v2_leaf.path, "cgroup.procs")

    def join():  # runs in the child before exec: into the cgroup first
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    res = subprocess.run(["sh", "-c", PROBE], preexec_fn=join, capture_output=True,
                         text=True, timeout=30)
    assert res.stdout.split() == ["null:r", "null:w", "zero:r", "zero:-", "urandom:r",
                                  "urandom:-", "full:-", "full:-"]
    # the refusal is EPERM, as the devices controller's
    res = subprocess.run(["python3", "-S", "-c",
                          "import os\ntry:\n os.open('/dev/full', os.O_RDONLY)\n"
                          "except OSError as e:\n print(e.errno)"],
                         preexec_fn=join, capture_output=True, text=True, timeout=30)
    assert res.stdout.strip() == "1"
    # outside the cgroup nothing changed
    assert subprocess.run(["sh", "-c", ": < /dev/full"]).returncode == 0
