"""The little networking the runtime itself does: bring ``lo`` up in a new
network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS on a datagram socket).
Everything else (veth, bridges, addresses) is pyroute2's, in the daemon."""

from __future__ import annotations

import _socket  # (socket would import enum: this runs in every `create`)
import fcntl
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: name[IFNAMSIZ], short ifr_flags, padding to 40 bytes


def _ifreq(name: str, flags: int = 0) -> bytes:
    return struct.pack(_IFREQ, name.encode(), flags)


def link_flags(name: str) -> int:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        res = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, _ifreq(name))
    except OSError as exc:
        raise OSError(exc.errno, f"SIOCGIFFLAGS {name}: {exc.strerror}") from None
    finally:
        s.close()
    return struct.unpack(_IFREQ, res)[1]


def link_up(name: str = "lo") -> None:
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        res = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, _ifreq(name))
        flags = struct.unpack(_IFREQ, res)[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, _ifreq(name, flags | IFF_UP))
    except OSError as exc:
        raise OSError(exc.errno, f"bring {name} up: {exc.strerror}") from None
    finally:
        s.close()
