"""Docker's JSON progress stream (pull, push, load, import) rendered as the
docker CLI does (jsonmessage.DisplayJSONMessagesStream).

On a terminal every message that carries an ``id`` and progress owns one line;
a later message for the same id moves the cursor up to that line, erases it,
rewrites it and moves back down.  Any other message forgets those lines (they
are never redrawn again).  Off a terminal progress bars are not shown at all.

Pure: ``render`` takes the decoded messages and a writer; the terminal width
is a parameter, so the text produced can be tested exactly.  Standard library
only.
"""

ESC = "\x1b["


class StreamFailed(Exception):
    """The stream carried an error message (its text is the message)."""


def progress_string(detail, width, now=None):
    """``JSONProgress.String()``: ``[====>    ]  1.2MB/3.4MB`` (the bar only on a
    terminal wider than 110 columns), "" when there is nothing to show."""
    from cli.units import human_size
    current = detail.get("current") or 0
    total = detail.get("total") or 0
    units = detail.get("units") or ""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        if not units:
            return "%8s" % human_size(current)
        return "%d %s" % (current, units)
    percentage = int(current / total * 100) // 2
    if percentage > 50:
        percentage = 50
    bar = ""
    if width > 110:
        bar = "[%s>%s] " % ("=" * percentage, " " * max(0, 50 - percentage))
    if detail.get("hidecounts"):
        numbers = ""
    elif not units:
        numbers = "%8s/%s" % (human_size(current), human_size(total))
        if current > total:
            numbers = "%8s" % human_size(current)
    else:
        numbers = "%d/%d %s" % (current, total, units)
        if current > total:
            numbers = "%d %s" % (current, units)
    left = ""
    start = detail.get("start") or 0
    if width > 50 and current > 0 and start > 0 and percentage < 50:
        import time
        elapsed = (now if now is not None else time.time()) - start
        left = " " + go_seconds(round((total - current) * (elapsed / current)))
    return bar + numbers + left


def go_seconds(secs):
    """Go's time.Duration.String() of a whole number of seconds: 0s, 42s, 1m5s, 2h0m3s."""
    secs = int(secs)
    sign = "-" if secs < 0 else ""
    secs = abs(secs)
    h, rest = divmod(secs, 3600)
    m, s = divmod(rest, 60)
    if h:
        return "%s%dh%dm%ds" % (sign, h, m, s)
    if m:
        return "%s%dm%ds" % (sign, m, s)
    return "%s%ds" % (sign, s)


def _error(m):
    detail = m.get("errorDetail") or {}
    if m.get("error") or detail:
        return detail.get("message") or m.get("error") or "unknown error"
    return None


def _timestamp(m):
    from cli.units import rfc3339_nano_fixed
    if m.get("timeNano"):
        t = m["timeNano"]
        return rfc3339_nano_fixed(t // 10 ** 9, t % 10 ** 9) + " "
    if m.get("time"):
        return rfc3339_nano_fixed(m["time"]) + " "
    return ""


def _display(m, out, terminal, width, now):
    """``JSONMessage.Display``; returns nothing, raises StreamFailed on an error."""
    err = _error(m)
    if err is not None:
        raise StreamFailed(err)
    detail = m.get("progressDetail")
    has_progress = isinstance(detail, dict)
    endl = ""
    if terminal and not m.get("stream") and has_progress:
        out.write(ESC + "2K")  # erase the whole line
        endl = "\r"
        out.write(endl)
    elif has_progress and progress_string(detail, width, now):
        return  # no progress bars off a terminal
    text = [_timestamp(m)]
    if m.get("id"):
        text.append("%s: " % m["id"])
    if m.get("from"):
        text.append("(from %s) " % m["from"])
    if has_progress and terminal:
        text.append("%s %s%s" % (m.get("status", ""), progress_string(detail, width, now), endl))
    elif m.get("progress"):
        text.append("%s %s%s" % (m.get("status", ""), m["progress"], endl))
    elif m.get("stream"):
        text.append("%s%s" % (m["stream"], endl))
    else:
        text.append("%s%s\n" % (m.get("status", ""), endl))
    out.write("".join(text))


def render(messages, out, terminal=False, width=200, now=None, on_aux=None):
    """Write the stream of decoded JSON messages to ``out`` as the docker CLI
    does; on a terminal ``width`` columns wide if ``terminal``.  Raises
    StreamFailed at the first error message (what came before is written)."""
    ids = {}
    for m in messages:
        if not isinstance(m, dict):
            continue
        if m.get("aux") is not None:
            if on_aux is not None:
                on_aux(m["aux"])
            continue
        diff = 0
        mid = m.get("id") or ""
        if mid and (isinstance(m.get("progressDetail"), dict) or m.get("progress")):
            line = ids.get(mid)
            if line is None:
                line = len(ids)
                ids[mid] = line
                if terminal:
                    out.write("\n")
            diff = len(ids) - line
            if terminal and diff:
                out.write("%s%dA" % (ESC, diff))
        else:
            ids = {}
        try:
            _display(m, out, terminal, width, now)
        finally:
            if mid and terminal and diff:
                out.write("%s%dB" % (ESC, diff))
        out.flush()


def terminal_width(fd=1):
    import os
    try:
        return os.get_terminal_size(fd).columns or 200
    except OSError:
        return 200
