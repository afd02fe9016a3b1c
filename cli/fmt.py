"""Output helpers that reproduce the docker CLI's bytes: Go's text/tabwriter,
strconv.Quote, encoding/json's escaping and json.Indent, docker's Ellipsis
and TruncateID."""


def tabwrite(text, minwidth=10, tabwidth=1, padding=3, padchar=" "):
    """Go's text/tabwriter (flags 0) over a complete text.

    Cells are tab-terminated; the text after the last tab of a line is not part
    of a column.  Column widths are computed per block of consecutive lines
    that have a cell in that column, as Go does."""
    lines = [line.split("\t") for line in text.split("\n")]
    trailing_newline = text.endswith("\n")
    if trailing_newline:
        lines.pop()
    out = []
    widths = []

    def write_lines(line0, line1):
        for i in range(line0, line1):
            cells = lines[i]
            parts = []
            for j, c in enumerate(cells):
                parts.append(c)
                if j < len(widths) and j < len(cells) - 1:
                    w = len(c)
                    if widths[j] > w:
                        parts.append(padchar * (widths[j] - w))
            out.append("".join(parts))

    def fmt(line0, line1):
        column = len(widths)
        this = line0
        while this < line1:
            cells = lines[this]
            if column >= len(cells) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1:
                cells = lines[this]
                if column >= len(cells) - 1:
                    break
                w = len(cells[column]) + padding
                if w > width:
                    width = w
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    res = "\n".join(out)
    if trailing_newline:
        res += "\n"
    return res


def truncate_id(id_):
    """docker's TruncateID: drop an algorithm prefix, keep 12 characters."""
    i = id_.find(":")
    if i >= 0:
        id_ = id_[i + 1:]
    return id_[:12]


def _char_width(ch):
    if ord(ch) < 0x1100:
        return 1
    import unicodedata
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def ellipsis(s, max_width):
    """docker's formatter.Ellipsis: fit s into max_width display columns, ending with …."""
    if max_width <= 0:
        return ""
    if max_width == 1:
        return s[:1]
    if s.isascii():
        if len(s) <= max_width:
            return s
        return s[:max_width - 1] + "\u2026"
    display = []
    total = 0
    for ch in s:
        total += _char_width(ch)
        display.append(total)
    if total <= max_width:
        return s
    for i in range(len(display) - 1):
        if display[i] <= max_width - 1 < display[i + 1]:
            return s[:i + 1] + "\u2026"
    return s


_QUOTE_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
              "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(s):
    """Go's strconv.Quote."""
    out = ['"']
    for ch in s:
        e = _QUOTE_ESC.get(ch)
        if e is not None:
            out.append(e)
        elif ch.isprintable():
            out.append(ch)
        else:
            o = ord(ch)
            if o < 0x80:
                out.append("\\x%02x" % o)
            elif 0xDC80 <= o <= 0xDCFF:  # surrogate-escaped invalid byte
                out.append("\\x%02x" % (o - 0xDC00))
            elif o < 0x10000:
                out.append("\\u%04x" % o)
            else:
                out.append("\\U%08x" % o)
    out.append('"')
    return "".join(out)


class TableRow:
    """A row of one of docker's formatter tables: ``{{.Name}}`` is ``f_Name()``
    for the names in HEADERS, ``{{json .}}`` every one of FIELDS; a row with
    labels (``label(name)``) offers ``{{.Label "k"}}`` too."""
    FIELDS: tuple = ()
    HEADERS: dict = {}

    def tmpl_field(self, name):
        if name == "Label" and hasattr(self, "label"):
            return self.label
        if name not in self.HEADERS:
            raise KeyError(name)
        return getattr(self, "f_" + name)()

    def tmpl_json(self):
        return go_json({k: self.tmpl_field(k) for k in self.FIELDS})


def go_json(obj, escape_html=True):
    """encoding/json compact output: HTML escaping as json.Marshal does (or not,
    as docker's template `json` function does), U+2028/9 escaped, no ASCII
    escaping of other characters."""
    import json
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    if escape_html:
        s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def json_indent(src, indent="    "):
    """Go's json.Indent(dst, src, "", indent): re-indent raw JSON text, keeping
    the daemon's key order and string escapes byte for byte."""
    out = []
    depth = 0
    need_indent = False
    in_str = False
    esc = False
    i = 0
    n = len(src)
    append = out.append
    while i < n:
        ch = src[i]
        if in_str:
            # copy the rest of the string in one piece
            j = i
            while j < n:
                c = src[j]
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    break
                j += 1
            append(src[i:j + 1])
            in_str = False
            i = j + 1
            continue
        i += 1
        if ch in " \t\r\n":
            continue
        if need_indent and ch not in "]}":
            need_indent = False
            depth += 1
            append("\n" + indent * depth)
        if ch == '"':
            in_str = True
            append(ch)
        elif ch in "[{":
            append(ch)
            need_indent = True
        elif ch == ",":
            append(",\n" + indent * depth)
        elif ch == ":":
            append(": ")
        elif ch in "]}":
            if need_indent:
                need_indent = False
            else:
                depth -= 1
                append("\n" + indent * depth)
            append(ch)
        else:
            append(ch)
    return "".join(out)


def go_float(f):
    """fmt's %v for a float64 (strconv 'g' with the shortest precision)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    r = repr(f)
    neg = r.startswith("-")
    if neg:
        r = r[1:]
    mant, _, exp = r.partition("e")
    exp = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    digits = ip + fp
    # decimal point position relative to digits
    dp = len(ip) + exp
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    x = dp - 1  # exponent in d.ddd form
    if x < -4 or x >= 6:
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        s = "%se%s%02d" % (m, "-" if x < 0 else "+", abs(x))
    elif dp <= 0:
        s = "0." + "0" * (-dp) + digits
    elif dp >= len(digits):
        s = digits + "0" * (dp - len(digits))
    else:
        s = digits[:dp] + "." + digits[dp:]
    return "-" + s if neg else s
