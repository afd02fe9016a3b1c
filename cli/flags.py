"""A small pflag/cobra-compatible command line parser.

It reproduces what the docker CLI (cobra + spf13/pflag) accepts and how it
complains, because scripts depend on both:

* ``--name value``, ``--name=value``, ``-n value``, ``-nvalue``, ``-n=value``;
  combined short booleans (``-dit``, ``-aq``); ``--bool=false``;
* ``--`` ends the flags; commands that are not *interspersed* (run, create,
  exec, top) also stop at their first positional argument, so that
  ``trioctr run busybox ls -l`` passes ``-l`` to the container;
* pflag's error wording (``unknown flag: --foo``, ``unknown shorthand flag:
  'z' in -z``, ``flag needs an argument: 'n' in -n``, ``invalid argument "x"
  for "-n, --last" flag: ...``) and cobra's argument-count wording.

Help output follows docker's usage template and pflag's ``FlagUsagesWrapped``.
"""

PROG = "trioctr"


class UsageError(Exception):
    """A command line error.  ``flag`` errors exit 125, argument-count errors 1."""

    def __init__(self, message, spec, kind="flag"):
        super().__init__(message)
        self.message = message
        self.spec = spec
        self.kind = kind

    def render(self):
        spec = self.spec
        if self.kind == "flag":
            return "%s\n\nUsage:  %s\n\nRun '%s --help' for more information" % (
                self.message, spec.usage_line(), spec.full_name())
        word = "See" if self.kind == "args-see" else "Run"
        return "%s: %s\n\nUsage:  %s\n\n%s '%s --help' for more information" % (
            PROG, self.message, spec.usage_line(), word, spec.full_name())

    @property
    def exit_code(self):
        return 125 if self.kind == "flag" else 1


class HelpRequested(Exception):
    def __init__(self, spec):
        super().__init__(spec.name)
        self.spec = spec


# --- value converters ------------------------------------------------------

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(s):
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError('strconv.ParseBool: parsing "%s": invalid syntax' % s)


def parse_int(s):
    """strconv.ParseInt(s, 0, 64) as pflag's Int/Int64 flags use it."""
    t = s
    try:
        neg = t.startswith("-")
        body = t[1:] if t[:1] in "+-" else t
        if not body or body[0] in "+-":
            raise ValueError
        low = body.lower()
        if low.startswith("0x"):
            v = int(body[2:], 16)
        elif low.startswith("0o"):
            v = int(body[2:], 8)
        elif low.startswith("0b"):
            v = int(body[2:], 2)
        elif len(body) > 1 and body[0] == "0":
            v = int(body[1:], 8)
        else:
            if not body.isdigit():
                raise ValueError
            v = int(body)
        v = -v if neg else v
    except ValueError:
        raise ValueError('strconv.ParseInt: parsing "%s": invalid syntax' % s) from None
    if not -(1 << 63) <= v < (1 << 63):
        raise ValueError('strconv.ParseInt: parsing "%s": value out of range' % s)
    return v


def parse_filter(s):
    if "=" not in s:
        raise ValueError("bad format of filter (expected name=value)")
    return s


def parse_bytes(s):
    from cli.units import ram_in_bytes
    return ram_in_bytes(s)


def parse_swap(s):
    if s == "-1":
        return -1
    from cli.units import ram_in_bytes
    return ram_in_bytes(s)


def parse_nanocpus(s):
    from cli.units import nano_cpus
    return nano_cpus(s)


# kind -> (help type name, converter, is_list)
KINDS = {
    "bool": ("", parse_bool, False),
    "string": ("string", None, False),
    "int": ("int", parse_int, False),
    "list": ("list", None, True),
    "filter": ("filter", parse_filter, True),
    "bytes": ("bytes", parse_bytes, False),
    "swap": ("bytes", parse_swap, False),
    "decimal": ("decimal", parse_nanocpus, False),
    "network": ("network", None, False),
    "map": ("map", None, True),
    "ulimit": ("ulimit", None, True),
    "attach": ("list", None, True),
}


def parse_attach(s):
    if s.lower() not in ("stdin", "stdout", "stderr"):
        raise ValueError("valid streams are STDIN, STDOUT and STDERR")
    return s.lower()


def parse_ulimit(s):
    """docker's UlimitOpt: name=soft[:hard] -> {"Name", "Soft", "Hard"}."""
    name, eq, val = s.partition("=")
    if not eq:
        raise ValueError("invalid ulimit argument: %s" % s)
    soft, colon, hard = val.partition(":")
    try:
        soft_v = int(soft)
        hard_v = int(hard) if colon else soft_v
    except ValueError:
        raise ValueError("invalid ulimit argument: %s" % s) from None
    if soft_v > hard_v:
        raise ValueError("ulimit soft limit must be less than or equal to hard limit: %d > %d"
                         % (soft_v, hard_v))
    return {"Name": name, "Hard": hard_v, "Soft": soft_v}


def parse_mount(s):
    from cli.volumes import parse_mount as parse
    return parse(s)


KINDS["attach"] = ("list", parse_attach, True)
KINDS["mount"] = ("mount", parse_mount, True)
KINDS["ulimit"] = ("ulimit", parse_ulimit, True)


class Flag:
    __slots__ = ("name", "short", "kind", "usage", "default", "dest", "hidden",
                 "show_default")

    def __init__(self, name, short, kind, usage, default=None, hidden=False,
                 show_default=None):
        self.name = name
        self.short = short
        self.kind = kind
        self.usage = usage
        self.default = default
        self.dest = name.replace("-", "_")
        self.hidden = hidden
        # text for "(default ...)" in help; None: derived from default
        self.show_default = show_default

    def display(self):
        if self.short:
            return "-%s, --%s" % (self.short, self.name)
        return "--" + self.name

    def initial(self):
        if KINDS[self.kind][2]:
            return []
        if self.kind == "bool":
            return bool(self.default)
        return self.default

    def convert(self, raw):
        conv = KINDS[self.kind][1]
        if conv is None:
            return raw
        try:
            return conv(raw)
        except ValueError as e:
            raise UsageError('invalid argument "%s" for "%s" flag: %s'
                             % (raw, self.display(), e), None) from None


class Spec:
    """One command: name, usage, description, flags and the argument rule."""

    def __init__(self, name, usage, short, flags=(), args=("any",),
                 interspersed=True, parent=None):
        self.name = name
        self.usage = usage
        self.short = short
        self.flags = list(flags)
        self.args = args
        self.interspersed = interspersed
        self.parent = parent
        self.by_long = {f.name: f for f in self.flags}
        self.by_short = {f.short: f for f in self.flags if f.short}
        # cobra's implicit help flag; run/create take -h for --hostname
        self.help_short = "h" not in self.by_short

    def full_name(self):
        return "%s %s" % (PROG, self.name) if self.name else PROG

    def usage_line(self):
        if not self.name:
            return "%s %s" % (PROG, self.usage)
        # the usage starts with the command word; show the name it was called by
        # (`trioctr container ls [OPTIONS]` as well as `trioctr ps [OPTIONS]`)
        rest = self.usage.split(" ", 1)[1] if " " in self.usage else ""
        return ("%s %s %s" % (PROG, self.name, rest)).rstrip()

    # --- parsing -----------------------------------------------------------

    def parse(self, argv):
        """Return (opts: dict, args: list).  Raises UsageError, HelpRequested."""
        opts = {f.dest: f.initial() for f in self.flags}
        args = []
        seen = set()
        i = 0
        n = len(argv)
        want_help = False
        try:
            while i < n:
                a = argv[i]
                i += 1
                if a == "--":
                    args.extend(argv[i:])
                    break
                if a.startswith("--"):
                    body = a[2:]
                    name, eq, value = body.partition("=")
                    if not name or name[0] in "-=":
                        raise UsageError("bad flag syntax: %s" % a, self)
                    if name == "help":
                        want_help = True if not eq else parse_bool(value)
                        continue
                    f = self.by_long.get(name)
                    if f is None:
                        raise UsageError("unknown flag: --%s" % name, self)
                    if f.kind == "bool":
                        self._set(opts, seen, f, value if eq else "true")
                    else:
                        if not eq:
                            if i >= n:
                                raise UsageError("flag needs an argument: --%s" % name, self)
                            value = argv[i]
                            i += 1
                        self._set(opts, seen, f, value)
                elif a.startswith("-") and len(a) > 1:
                    j = 1
                    while j < len(a):
                        c = a[j]
                        f = self.by_short.get(c)
                        if f is None:
                            if c == "h" and self.help_short:
                                want_help = True
                                j += 1
                                continue
                            raise UsageError("unknown shorthand flag: '%s' in -%s" % (c, a[j:]), self)
                        rest = a[j + 1:]
                        if f.kind == "bool":
                            if rest.startswith("="):
                                self._set(opts, seen, f, rest[1:])
                                break
                            self._set(opts, seen, f, "true")
                            j += 1
                            continue
                        if rest.startswith("="):
                            value = rest[1:]
                        elif rest:
                            value = rest
                        else:
                            if i >= n:
                                raise UsageError("flag needs an argument: '%s' in -%s" % (c, a[j:]), self)
                            value = argv[i]
                            i += 1
                        self._set(opts, seen, f, value)
                        break
                else:
                    args.append(a)
                    if not self.interspersed:
                        args.extend(argv[i:])
                        break
        except ValueError as e:  # --help=xyz
            raise UsageError('invalid argument for "--help" flag: %s' % e, self) from None
        if want_help:
            raise HelpRequested(self)
        opts["_set"] = seen
        self.check_args(args)
        return opts, args

    def _set(self, opts, seen, f, raw):
        try:
            v = f.convert(raw)
        except UsageError as e:
            e.spec = self
            raise
        if KINDS[f.kind][2]:
            opts[f.dest].append(v)
        else:
            opts[f.dest] = v
        seen.add(f.dest)

    def check_args(self, args):
        rule = self.args
        kind = rule[0]
        full = "'%s'" % self.full_name()
        if kind == "none" and args:
            raise UsageError("%s accepts no arguments" % full, self, "args")
        if kind == "exact" and len(args) != rule[1]:
            raise UsageError("%s requires %d argument%s" % (full, rule[1], "" if rule[1] == 1 else "s"),
                             self, "args")
        if kind == "min" and len(args) < rule[1]:
            raise UsageError("%s requires at least %d argument%s"
                             % (full, rule[1], "" if rule[1] == 1 else "s"), self, "args-see")
        if kind == "range" and not rule[1] <= len(args) <= rule[2]:
            if len(args) < rule[1]:
                raise UsageError("%s requires at least %d argument%s"
                                 % (full, rule[1], "" if rule[1] == 1 else "s"), self, "args-see")
            raise UsageError("%s requires at most %d argument%s"
                             % (full, rule[2], "" if rule[2] == 1 else "s"), self, "args-see")

    # --- help --------------------------------------------------------------

    def help(self, width=None):
        out = ["Usage:  %s\n\n%s\n" % (self.usage_line(), self.short)]
        visible = [f for f in self.flags if not f.hidden]
        if visible:
            out.append("\nOptions:\n")
            out.append(flag_usages(visible, width))
        return "".join(out)


def _terminal_width():
    import os
    try:
        return os.get_terminal_size(0).columns
    except OSError:
        return 80


def flag_usages(flags, width=None):
    """pflag's FlagUsagesWrapped(width - 1), flags sorted by name."""
    if width is None:
        width = _terminal_width()
    cols = width - 1
    lines = []
    maxlen = 0
    for f in sorted(flags, key=lambda f: f.name):
        if f.short:
            line = "  -%s, --%s" % (f.short, f.name)
        else:
            line = "      --%s" % f.name
        tname = KINDS[f.kind][0]
        if tname:
            line += " " + tname
        line += "\x00"
        maxlen = max(maxlen, len(line))
        usage = f.usage
        if f.show_default is not None:
            usage += " (default %s)" % f.show_default
        elif f.kind == "string" and f.default:
            usage += ' (default "%s")' % f.default
        elif f.kind in ("int",) and f.default not in (None, 0):
            usage += " (default %s)" % f.default
        elif f.kind == "bool" and f.default:
            usage += " (default true)"
        lines.append(line + usage)
    buf = []
    for line in lines:
        sidx = line.index("\x00")
        spacing = " " * (maxlen - sidx)
        buf.append("%s %s %s\n" % (line[:sidx], spacing, _wrap(maxlen + 2, cols, line[sidx + 1:])))
    return "".join(buf)


def _wrap_n(i, slop, s):
    if i + slop > len(s):
        return s, ""
    head = s[:i]
    w = max(head.rfind(" "), head.rfind("\t"), head.rfind("\n"))
    if w <= 0:
        return s, ""
    nl = head.rfind("\n")
    if 0 < nl < w:
        return s[:nl], s[nl + 1:]
    return s[:w], s[w + 1:]


def _wrap(i, w, s):
    if w == 0:
        return s.replace("\n", "\n" + " " * i)
    wrap = w - i
    r = ""
    if wrap < 24:
        i = 16
        wrap = w - i
        r += "\n" + " " * i
    if wrap < 24:
        return s.replace("\n", r)
    slop = 5
    wrap -= slop
    line, s = _wrap_n(wrap, slop, s)
    r += line.replace("\n", "\n" + " " * i)
    while s:
        t, s = _wrap_n(wrap, slop, s)
        r += "\n" + " " * i + t.replace("\n", "\n" + " " * i)
    return r


# --- shared flag sets --------------------------------------------------------

FORMAT_TABLE_HELP = (
    "Format output using a custom template:\n"
    "'table':            Print output in table format with column headers (default)\n"
    "'table TEMPLATE':   Print output in table format using the given Go template\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about "
    "formatting output with templates")

FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about "
    "formatting output with templates")
