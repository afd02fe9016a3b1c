"""cgroup v2 device rules: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE)
made from OCI ``linux.resources.devices``, loaded with bpf(2) and attached
to the container's cgroup2 directory (what cgroup v1's devices.allow and
devices.deny files did).

The rules are read in order, as cgroup v1 applies its writes: for each kind
of access asked (mknod, read, write), the *last* rule that matches the
device's type, major and minor and lists that access decides; no matching
rule denies.  So ``deny a`` then ``allow c 1:3 rwm`` opens /dev/null only,
and ``allow c 1:3 rw`` then ``deny c *:* w`` leaves it read-only.

``device_program(rules)`` is pure (the instructions as bytes);
``evaluate(rules, ...)`` states the same decision in Python and
``run_program(insns, ...)`` interprets the instructions we emit, so that the
two can be checked against each other without a kernel.  Then
``load_device_program()`` and ``attach_device_program()`` do the syscalls.

Program shape (as runc's and crun's device filters): the context
``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor}`` is
loaded into r2 = type (low 16 bits of access_type), r3 = access (high 16),
r4 = major, r5 = minor; then one block per access bit, each a chain of
rule tests from the last rule to the first; r0 = 1 (allow) or 0 (deny).
"""

from __future__ import annotations

import ctypes
import os
import struct

# bpf(2) commands, program and attach types, flags
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# bpf_cgroup_dev_ctx encodings
DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
DEV_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}

# opcodes (class | op | source)
_LDX_W = 0x61        # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54      # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74      # BPF_ALU | BPF_RSH | BPF_K
_MOV32_K = 0xB4      # BPF_ALU | BPF_MOV | BPF_K
_MOV32_X = 0xBC      # BPF_ALU | BPF_MOV | BPF_X
_JA = 0x05           # BPF_JMP | BPF_JA
_JEQ32_K = 0x16      # BPF_JMP32 | BPF_JEQ | BPF_K
_JNE32_K = 0x56      # BPF_JMP32 | BPF_JNE | BPF_K
_EXIT = 0x95         # BPF_JMP | BPF_EXIT

LICENSE = b"Apache-2.0"
MAX_INSNS = 1_000_000  # the kernel's limit for a privileged loader


class _Asm:
    """Instructions with symbolic jump targets, resolved by ``encode()``."""

    def __init__(self) -> None:
        self.insns: list[list] = []  # [code, dst, src, off | label, imm]
        self.labels: dict[str, int] = {}
        self._n = 0

    def label(self) -> str:
        self._n += 1
        return f"L{self._n}"

    def here(self, label: str) -> None:
        self.labels[label] = len(self.insns)

    def op(self, code: int, dst: int = 0, src: int = 0, off=0, imm: int = 0) -> None:
        self.insns.append([code, dst, src, off, imm])

    def encode(self) -> bytes:
        out = bytearray()
        for pc, (code, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                off = self.labels[off] - pc - 1
            if imm >= 2**31:
                imm -= 2**32  # a u32 compared with JMP32: the same bits
            out += struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
        return bytes(out)


def _rule_parts(rule: dict) -> tuple[int | None, int | None, int | None, int, bool]:
    """(type or None for all, major or None, minor or None, access bits, allow)."""
    kind = rule.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise ValueError(f"bad device rule type {kind!r}")
    access = rule.get("access") or "rwm"
    bits = 0
    for ch in access:
        if ch not in ACCESS_BITS:
            raise ValueError(f"bad device access {access!r}")
        bits |= ACCESS_BITS[ch]
    major, minor = rule.get("major"), rule.get("minor")
    for value in (major, minor):
        if value is not None and value >= 2**32:
            raise ValueError(f"device number {value} does not fit in 32 bits")
    if kind == "a":
        major = minor = None
    return (DEV_TYPES.get(kind), None if major is None or major < 0 else major,
            None if minor is None or minor < 0 else minor, bits, bool(rule.get("allow")))


def evaluate(rules: list[dict], dev_type: int, major: int, minor: int, access: int) -> bool:
    """The decision the program makes, in Python (the reference)."""
    parts = [_rule_parts(r) for r in rules]
    for bit in (ACC_MKNOD, ACC_READ, ACC_WRITE):
        if not access & bit:
            continue
        verdict = False
        for kind, maj, mnr, bits, allow in reversed(parts):
            if bits & bit and kind in (None, dev_type) and maj in (None, major) \
                    and mnr in (None, minor):
                verdict = allow
                break
        if not verdict:
            return False
    return True


def device_program(rules: list[dict]) -> bytes:
    """The BPF_PROG_TYPE_CGROUP_DEVICE program for OCI device rules."""
    parts = [_rule_parts(r) for r in rules]
    a = _Asm()
    a.op(_LDX_W, dst=2, src=1, off=0)
    a.op(_AND32_K, dst=2, imm=0xFFFF)
    a.op(_LDX_W, dst=3, src=1, off=0)
    a.op(_RSH32_K, dst=3, imm=16)
    a.op(_LDX_W, dst=4, src=1, off=4)
    a.op(_LDX_W, dst=5, src=1, off=8)
    deny = a.label()
    denied = False  # (the verifier refuses unreachable instructions)
    for bit in (ACC_MKNOD, ACC_READ, ACC_WRITE):
        next_bit = a.label()
        # is this access asked for at all?
        a.op(_MOV32_X, dst=1, src=3)
        a.op(_AND32_K, dst=1, imm=bit)
        a.op(_JEQ32_K, dst=1, off=next_bit, imm=0)
        decided = False
        for kind, maj, mnr, bits, allow in reversed(parts):
            if not bits & bit:
                continue
            next_rule = a.label()
            if kind is not None:
                a.op(_JNE32_K, dst=2, off=next_rule, imm=kind)
            if maj is not None:
                a.op(_JNE32_K, dst=4, off=next_rule, imm=maj)
            if mnr is not None:
                a.op(_JNE32_K, dst=5, off=next_rule, imm=mnr)
            a.op(_JA, off=next_bit if allow else deny)
            denied = denied or not allow
            a.here(next_rule)
            if kind is None and maj is None and mnr is None:
                decided = True  # matches everything: the rules before it never decide
                break
        if not decided:
            a.op(_JA, off=deny)  # no rule for this access: denied
            denied = True
        a.here(next_bit)
    a.op(_MOV32_K, dst=0, imm=1)
    a.op(_EXIT)
    if denied:
        a.here(deny)
        a.op(_MOV32_K, dst=0, imm=0)
        a.op(_EXIT)
    code = a.encode()
    if len(code) // 8 > MAX_INSNS:
        raise ValueError(f"too many device rules ({len(rules)}) for one program")
    return code


def run_program(code: bytes, dev_type: int, major: int, minor: int, access: int) -> bool:
    """Interpret a program of ours (only the opcodes device_program emits)."""
    regs = [0] * 11
    ctx = ((access << 16) | dev_type, major, minor)
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    pc = 0
    for _ in range(len(insns) * 4):
        op, regbits, off, imm = insns[pc]
        dst, src = regbits & 0xF, regbits >> 4
        pc += 1
        u32 = imm & 0xFFFFFFFF
        if op == _LDX_W:
            regs[dst] = ctx[off // 4]
        elif op == _AND32_K:
            regs[dst] &= u32
        elif op == _RSH32_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == _MOV32_K:
            regs[dst] = u32
        elif op == _MOV32_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == _JA:
            pc += off
        elif op == _JEQ32_K:
            pc += off if regs[dst] & 0xFFFFFFFF == u32 else 0
        elif op == _JNE32_K:
            pc += off if regs[dst] & 0xFFFFFFFF != u32 else 0
        elif op == _EXIT:
            return regs[0] == 1
        else:
            raise ValueError(f"opcode {op:#x} is not one of ours")
    raise RuntimeError("the program did not exit")


# --- the kernel -------------------------------------------------------------------

def _attr(fields: list[tuple[int, str, int]], size: int = 128) -> ctypes.Array:
    """A zeroed union bpf_attr with (offset, struct format, value) fields."""
    buf = ctypes.create_string_buffer(size)
    for offset, fmt, value in fields:
        struct.pack_into(fmt, buf, offset, value)
    return buf


def load_device_program(code: bytes) -> int:
    """BPF_PROG_LOAD: an fd for the program (the verifier's log in the error)."""
    from .syscalls import bpf

    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(LICENSE)

    def load(log) -> int:
        fields = [(0, "<I", BPF_PROG_TYPE_CGROUP_DEVICE), (4, "<I", len(code) // 8),
                  (8, "<Q", ctypes.addressof(insns)), (16, "<Q", ctypes.addressof(lic)),
                  (68, "<I", BPF_CGROUP_DEVICE)]
        if log is not None:
            fields += [(24, "<I", 1), (28, "<I", len(log)), (32, "<Q", ctypes.addressof(log))]
        attr = _attr(fields)
        struct.pack_into("16s", attr, 48, b"trioctr_devices")
        return bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD, cgroup device filter)")

    try:
        return load(None)
    except OSError as exc:
        if exc.errno not in (13, 22):  # EACCES, EINVAL: the verifier says why
            raise
        log = ctypes.create_string_buffer(65536)
        try:
            return load(log)
        except OSError as again:
            why = log.value.decode(errors="replace").strip().splitlines()
            raise OSError(again.errno, f"{again.strerror}: verifier: "
                          f"{why[-1] if why else '(no log)'}") from None


def attach_device_program(cgroup_dir: str, prog_fd: int) -> None:
    """BPF_PROG_ATTACH the program to a cgroup2 directory (BPF_F_ALLOW_MULTI:
    the ancestors' programs still run, and all must allow).  The cgroup
    keeps the program after our fds are closed."""
    from .syscalls import bpf

    dfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        attr = _attr([(0, "<I", dfd), (4, "<I", prog_fd), (8, "<I", BPF_CGROUP_DEVICE),
                      (12, "<I", BPF_F_ALLOW_MULTI)])
        bpf(BPF_PROG_ATTACH, attr, f"bpf(BPF_PROG_ATTACH, {cgroup_dir})")
    finally:
        os.close(dfd)


def apply_device_rules(cgroup_dir: str, rules: list[dict]) -> None:
    """Generate, load and attach the device filter for ``rules``."""
    fd = load_device_program(device_program(rules))
    try:
        attach_device_program(cgroup_dir, fd)
    finally:
        os.close(fd)
