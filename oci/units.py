"""Docker's sizes and durations (docker/go-units), stdlib only: the CLI and
the daemon both use this one module.

Ports of ``RAMInBytes``, ``FromHumanSize``, ``HumanSize``, ``BytesSize`` and
``HumanDuration``, plus the daemon's memory checks.  Parse errors use
go-units' words: ``invalid size: '...'`` or ``invalid suffix: '...'``.
"""

from __future__ import annotations

KB, MB, GB, TB, PB = (1000 ** i for i in range(1, 6))
KiB, MiB, GiB, TiB, PiB = (1024 ** i for i in range(1, 6))

_BINARY = {"k": KiB, "m": MiB, "g": GiB, "t": TiB, "p": PiB}
_DECIMAL = {"k": KB, "m": MB, "g": GB, "t": TB, "p": PB}

# the daemon's floor for --memory (linuxMinMemory)
MIN_MEMORY = 6 * MiB


class InvalidSize(ValueError):
    code = "INVALID_ARGUMENT"
    http_status = 400


def _go_parse_float(num: str) -> float:
    """strconv.ParseFloat's accepted forms (no spaces, no inf/nan)."""
    try:
        if not num or num.strip() != num or num.lower() in (
                "inf", "+inf", "-inf", "nan", "infinity", "+infinity", "-infinity"):
            raise ValueError
        return float(num)
    except ValueError:
        raise InvalidSize(f'strconv.ParseFloat: parsing "{num}": invalid syntax') from None


def _parse(size: str, table: dict[str, int]) -> int:
    """go-units parseSize: a number, an optional space, an optional unit
    (k/m/g/t/p, then an optional "b" or "ib"; or a lone "b")."""
    if not isinstance(size, str):
        raise InvalidSize(f"invalid size: '{size}'")
    sep = -1
    for i in range(len(size) - 1, -1, -1):
        if size[i] in "0123456789. ":
            sep = i
            break
    if sep == -1:
        raise InvalidSize(f"invalid size: '{size}'")
    if size[sep] != " ":
        num, sfx = size[:sep + 1], size[sep + 1:]
    else:
        num, sfx = size[:sep], size[sep + 1:]
    value = _go_parse_float(num)
    if value < 0:
        raise InvalidSize(f"invalid size: '{size}'")
    if not sfx:
        return int(value)
    low = sfx.lower()
    if len(sfx) > 3:
        raise InvalidSize(f"invalid suffix: '{sfx}'")
    if low[0] == "b":
        if len(low) > 1:
            raise InvalidSize(f"invalid suffix: '{low}'")
        return int(value)
    mul = table.get(low[0])
    if mul is None or (len(low) == 2 and low[1] != "b") or (len(low) == 3 and low[1:] != "ib"):
        raise InvalidSize(f"invalid suffix: '{low}'")
    return int(value * mul)


def ram_in_bytes(s: str) -> int:
    """``512m`` -> 536870912; binary multiples, any case, optional ``b``/``ib``
    (``512mb``, ``1GiB``), decimals allowed (``1.5g``)."""
    return _parse(s, _BINARY)


def from_human_size(s: str) -> int:
    """Like ``ram_in_bytes`` with decimal multipliers (``1k`` == 1000)."""
    return _parse(s, _DECIMAL)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration (``docker ps`` STATUS, ``images`` CREATED)."""
    ns = int(seconds * 1e9)
    secs = int(ns / 1e9)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return "%d seconds" % secs
    minutes = int(ns / 6e10)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return "%d minutes" % minutes
    hour = 3600 * 10 ** 9
    q, r = divmod(ns, hour)  # Duration.Round(time.Hour): half away from zero
    hours = q + (1 if r + r >= hour else 0)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return "%d hours" % hours
    if hours < 24 * 7 * 2:
        return "%d days" % (hours // 24)
    if hours < 24 * 30 * 2:
        return "%d weeks" % (hours // 24 // 7)
    if hours < 24 * 365 * 2:
        return "%d months" % (hours // 24 // 30)
    return "%d years" % (int(ns / 3.6e12) // 24 // 365)


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
