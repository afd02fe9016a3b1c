"""A busybox root filesystem in a directory, for runtime tests (no image, no network)."""

from __future__ import annotations

import os
import shutil
import subprocess

BUSYBOX = "/usr/bin/busybox"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = (
    "root:x:0:\n"
    "tty:x:5:\n"
    "nogroup:x:65534:\n"
)


def busybox_applets(busybox: str = BUSYBOX) -> list[str]:
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True)
    return sorted({a.strip() for a in out.stdout.split()
                   if a.strip() and "/" not in a and a.strip() != "busybox"})


_APPLETS: list[str] | None = None


def make_busybox_rootfs(path: str | os.PathLike, busybox: str = BUSYBOX) -> str:
    """Build a minimal rootfs at ``path``: bin/busybox plus one symlink per
    applet, etc/passwd (root, nobody), etc/group, tmp (1777), and empty
    proc, sys, dev, root and etc dirs.  Returns the path."""
    global _APPLETS
    root = os.fspath(path)
    for d in ("bin", "etc", "proc", "sys", "dev", "root", "tmp", "usr", "var"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    os.chmod(os.path.join(root, "root"), 0o700)
    shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
    os.chmod(os.path.join(root, "bin", "busybox"), 0o755)
    if _APPLETS is None:
        _APPLETS = busybox_applets(busybox)
    for applet in _APPLETS:
        link = os.path.join(root, "bin", applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    for name, text in (("passwd", PASSWD), ("group", GROUP), ("hostname", "busybox\n")):
        with open(os.path.join(root, "etc", name), "w") as f:
            f.write(text)
    return root
