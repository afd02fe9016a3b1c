"""Sizes, durations and timestamps the way docker/go-units and the docker CLI
parse and print them.  Standard library only; nothing here touches the network.
"""

# sizes and HumanDuration are go-units', shared with the daemon
from oci.units import bytes_size, human_duration, human_size, ram_in_bytes  # noqa: E402,F401


def nano_cpus(value):
    """docker's NanoCPUs flag: "1.5" -> 1500000000."""
    from fractions import Fraction
    try:
        cpu = Fraction(value.strip()) if value.strip() == value else None
        if cpu is None:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise ValueError("failed to parse %s as a rational number" % value) from None
    nano = cpu * 1000000000
    if nano.denominator != 1:
        raise ValueError("value is too precise")
    return int(nano)


_DURATION_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 10 ** 6,
                   "s": 10 ** 9, "m": 60 * 10 ** 9, "h": 3600 * 10 ** 9}


def parse_go_duration(s):
    """time.ParseDuration -> nanoseconds (int).  ValueError on bad input."""
    orig = s
    if not s:
        raise ValueError('time: invalid duration "%s"' % orig)
    neg = False
    if s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError('time: invalid duration "%s"' % orig)
    total = 0.0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        num = s[:i]
        if not num or num == "." or num.count(".") > 1:
            raise ValueError('time: invalid duration "%s"' % orig)
        s = s[i:]
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit = s[:j]
        s = s[j:]
        if not unit:
            raise ValueError('time: missing unit in duration "%s"' % orig)
        mul = _DURATION_UNITS.get(unit)
        if mul is None:
            raise ValueError('time: unknown unit "%s" in duration "%s"' % (unit, orig))
        total += float(num) * mul
    total = int(total)
    return -total if neg else total


def _parse_unix_timestamp(value):
    sec, dot, frac = value.partition(".")
    int(sec)  # raises ValueError
    if dot:
        if not frac.isdigit():
            raise ValueError(value)
    return value


def get_timestamp(value, now=None):
    """docker's timetypes.GetTimestamp: durations ("10m"), RFC 3339 dates
    and unix timestamps to the "seconds[.nanoseconds]" string the API takes."""
    import time as _time
    if now is None:
        now = _time.time()
    if value != "0":
        try:
            d = parse_go_duration(value)
        except ValueError:
            pass
        else:
            return str(int((now * 1e9 - d) // 1e9))
    import re
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?"
                     r"(Z|z|[+-]\d{2}:\d{2})?", value)
    if m is None:
        if "-" in value:
            raise ValueError('parsing time "%s": cannot parse "%s" as a timestamp' % (value, value))
        try:
            return _parse_unix_timestamp(value)
        except ValueError:
            raise ValueError('failed to parse value as time or duration: "%s"' % value) from None
    y, mo, d, hh, mi, ss, frac, zone = m.groups()
    if not 1 <= int(mo) <= 12:
        raise ValueError('parsing time "%s": month out of range' % value)
    if not 1 <= int(d) <= 31:
        raise ValueError('parsing time "%s": day out of range' % value)
    fields = (int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
    if zone is None:
        secs = int(_time.mktime(fields + (0, 0, -1)))
    else:
        import calendar
        secs = calendar.timegm(fields + (0, 0, 0))
        if zone not in ("Z", "z"):
            off = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
            secs -= off if zone[0] == "+" else -off
    nanos = int((frac or "0").ljust(9, "0"))
    return "%d.%09d" % (secs, nanos)


def _local(secs):
    """(local time struct, RFC 3339 zone: "Z" or "+hh:mm") for Unix ``secs``."""
    import time as _time
    tm = _time.localtime(secs)
    off = tm.tm_gmtoff
    if off == 0:
        return tm, "Z"
    sign = "+" if off > 0 else "-"
    off = abs(off)
    return tm, "%s%02d:%02d" % (sign, off // 3600, off % 3600 // 60)


def rfc3339_nano_fixed(secs, nanos=0):
    """Go's jsonmessage.RFC3339NanoFixed in local time, as docker prints event times."""
    import time as _time
    tm, zone = _local(secs)
    return "%s.%09d%s" % (_time.strftime("%Y-%m-%dT%H:%M:%S", tm), nanos, zone)


def rfc3339_local(secs):
    """Go's time.Unix(secs, 0).Format(time.RFC3339) in local time."""
    import time as _time
    tm, zone = _local(secs)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", tm) + zone


def go_time_string(secs):
    """Go's time.Time.String() for time.Unix(secs, 0): "2006-01-02 15:04:05 -0700 MST"."""
    import time as _time
    tm = _time.localtime(secs)
    return _time.strftime("%Y-%m-%d %H:%M:%S %z %Z", tm)


def parse_rfc3339(value):
    """RFC 3339 (with optional nanoseconds) -> (unix seconds, nanoseconds, tm_gmtoff)."""
    import re
    import calendar
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})",
                     value.strip())
    if m is None:
        raise ValueError(value)
    y, mo, d, hh, mi, ss, frac, zone = m.groups()
    secs = calendar.timegm((int(y), int(mo), int(d), int(hh), int(mi), int(ss), 0, 0, 0))
    off = 0
    if zone not in ("Z", "z"):
        off = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        if zone[0] == "-":
            off = -off
        secs -= off
    nanos = int((frac or "0")[:9].ljust(9, "0"))
    return secs, nanos, off
