"""Docker sizes (stdlib only; the CLI imports this module).

Ports of docker/go-units ``RAMInBytes``, ``FromHumanSize``, ``HumanSize`` and
``BytesSize``, plus the daemon's memory checks.

Note: go-units >= 0.5 words a bad *suffix* as ``invalid suffix: 'x'``; trioctr
keeps the older single message ``invalid size: '12x'`` for every malformed size.
"""

from __future__ import annotations

import re

KB, MB, GB, TB, PB = (1000 ** i for i in range(1, 6))
KiB, MiB, GiB, TiB, PiB = (1024 ** i for i in range(1, 6))

_BINARY = {"k": KiB, "m": MiB, "g": GiB, "t": TiB, "p": PiB}
_DECIMAL = {"k": KB, "m": MB, "g": GB, "t": TB, "p": PB}
_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?", re.ASCII)

# the daemon's floor for --memory (linuxMinMemory)
MIN_MEMORY = 6 * MiB


class InvalidSize(ValueError):
    code = "INVALID_ARGUMENT"
    http_status = 400


def _parse(s: str, table: dict[str, int]) -> int:
    if not isinstance(s, str):
        raise InvalidSize(f"invalid size: '{s}'")
    m = _SIZE_RE.fullmatch(s)
    if m is None:
        raise InvalidSize(f"invalid size: '{s}'")
    size = float(m.group(1))
    if m.group(2):
        size *= table[m.group(2).lower()]
    return int(size)


def ram_in_bytes(s: str) -> int:
    """``512m`` -> 536870912; suffixes b,k,m,g,t,p (binary), any case, optional
    ``b``/``ib`` (``512mb``, ``1GiB``), decimals allowed (``1.5g``)."""
    return _parse(s, _BINARY)


def from_human_size(s: str) -> int:
    """Like ``ram_in_bytes`` with decimal multipliers (``1k`` == 1000)."""
    return _parse(s, _DECIMAL)


def _sized(size: float, base: float, units: list[str], precision: int = 4) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{_fmt_g(size, precision)}{units[i]}"


def _fmt_g(x: float, precision: int) -> str:
    # Go's %.*g: shortest of %e/%f with `precision` significant digits, no
    # trailing zeros.
    s = f"{x:.{precision}g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = f"{mant}e{exp[0]}{int(exp[1:]):02d}"
    return s


def human_size(n: float, precision: int = 4) -> str:
    """``HumanSizeWithPrecision``: decimal units (``4.261MB``).  ``docker images``
    uses ``precision=3`` (``4.26MB``)."""
    return _sized(float(n), 1000.0, ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"],
                  precision)


def bytes_size(n: float) -> str:
    """``BytesSize``: binary units (``1.5GiB``)."""
    return _sized(float(n), 1024.0, ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"])


def check_memory(memory: int = 0, memory_swap: int = 0, *, update: bool = False) -> None:
    """The daemon's checks on --memory / --memory-swap, in Docker's words."""
    if memory and memory < MIN_MEMORY:
        raise InvalidSize("Minimum memory limit allowed is 6MB")
    if memory > 0 and memory_swap > 0 and memory_swap < memory:
        raise InvalidSize(
            "Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and memory_swap > 0 and not update:
        raise InvalidSize(
            "You should always set the Memory limit when using Memoryswap limit, see usage")


def effective_memory_swap(memory: int, memory_swap: int) -> int:
    """Docker's default: with --memory and no --memory-swap, swap = 2 x memory."""
    if memory > 0 and memory_swap == 0:
        return memory * 2
    return memory_swap
