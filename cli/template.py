"""A subset of Go's text/template, enough for docker's --format flags.

Supported: text and actions with ``{{-``/``-}}`` trimming and comments; field
chains (``.State.Status``), ``.``, ``$``, variables (``$x := ...``, ``range
$k, $v := ...``), string/number/bool/nil literals, parenthesised pipelines,
pipelines with ``|``; ``if``/``else if``/``else``/``end``, ``range`` (with
``else``), ``with``; the functions docker adds (``json``, ``join``, ``split``,
``lower``, ``upper``, ``title``, ``pad``, ``truncate``) and the Go builtins
``len``, ``index``, ``print``, ``printf``, ``println``, ``eq``, ``ne``, ``lt``,
``le``, ``gt``, ``ge``, ``and``, ``or``, ``not``.

Data is JSON-shaped (dicts, lists, str, int, float, bool, None) or a context
object with a ``tmpl_field(name)`` method (ps and images rows).  Values print
like Go's fmt ``%v``: ``map[a:b]``, ``[x y]``, ``<nil>``, ``<no value>``.
"""


class TemplateError(Exception):
    pass


class ParseError(TemplateError):
    pass


class ExecError(TemplateError):
    pass


class _Missing:
    def __repr__(self):
        return "<no value>"


MISSING = _Missing()

# --- lexer ---------------------------------------------------------------------


def _pos_line(src, pos):
    return src.count("\n", 0, pos) + 1


def _lex(src):
    """-> list of ("text", str, pos) and ("action", [tokens], pos)."""
    items = []
    i = 0
    n = len(src)
    trim_next = False
    while i < n:
        j = src.find("{{", i)
        if j < 0:
            text = src[i:]
            if trim_next:
                text = text.lstrip(" \t\r\n")
            if text:
                items.append(("text", text, i))
            break
        text = src[i:j]
        if trim_next:
            text = text.lstrip(" \t\r\n")
            trim_next = False
        k = j + 2
        if src.startswith("- ", k) or src.startswith("-\t", k) or src.startswith("-\n", k) \
                or src.startswith("-\r", k):
            text = text.rstrip(" \t\r\n")
            k += 1
        if text:
            items.append(("text", text, i))
        toks, k, trim_next = _lex_action(src, k)
        if toks is not None:
            items.append(("action", toks, j))
        i = k
    return items


_PUNCT = "|(),="


def _lex_action(src, i):
    """Lex one action starting after '{{' (and a trim marker).  -> (tokens, end, trim_right)."""
    n = len(src)
    toks = []
    # comment
    k = i
    while k < n and src[k] in " \t\r\n":
        k += 1
    if src.startswith("/*", k):
        end = src.find("*/", k + 2)
        if end < 0:
            raise ParseError("template: :%d: unclosed comment" % _pos_line(src, i))
        k = end + 2
        while k < n and src[k] in " \t\r\n":
            k += 1
        trim = False
        if src.startswith("-}}", k):
            trim = True
            k += 1
        if not src.startswith("}}", k):
            raise ParseError("template: :%d: comment ends before closing delimiter"
                             % _pos_line(src, i))
        return None, k + 2, trim
    prev_adjacent = False  # previous token can take a field chain (no space between)
    while True:
        if i >= n:
            raise ParseError("template: :%d: unclosed action" % _pos_line(src, i))
        c = src[i]
        if c in " \t\r\n":
            j = i
            while j < n and src[j] in " \t\r\n":
                j += 1
            if src.startswith("-}}", j):
                return toks, j + 3, True
            if src.startswith("}}", j):
                return toks, j + 2, False
            i = j
            prev_adjacent = False
            continue
        if src.startswith("}}", i):
            return toks, i + 2, False
        if c == ".":
            j = i + 1
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            name = src[i + 1:j]
            if not name:
                if j < n and src[j].isdigit():
                    pass
                toks.append(("dot", ".", i))
                prev_adjacent = False
            else:
                toks.append(("field", name, i, prev_adjacent))
                prev_adjacent = True
            i = j
            continue
        if c == "$":
            j = i + 1
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            toks.append(("var", src[i:j], i))
            prev_adjacent = True
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                if src[j] == "\\":
                    j += 1
                elif src[j] == "\n":
                    raise ParseError("template: :%d: unterminated quoted string" % _pos_line(src, i))
                j += 1
            if j >= n:
                raise ParseError("template: :%d: unterminated quoted string" % _pos_line(src, i))
            toks.append(("const", _unquote(src[i:j + 1]), i))
            prev_adjacent = False
            i = j + 1
            continue
        if c == "`":
            j = src.find("`", i + 1)
            if j < 0:
                raise ParseError("template: :%d: unterminated raw quoted string" % _pos_line(src, i))
            toks.append(("const", src[i + 1:j], i))
            prev_adjacent = False
            i = j + 1
            continue
        if c == "'":
            j = src.find("'", i + 1)
            if j < 0:
                raise ParseError("template: :%d: unterminated character constant" % _pos_line(src, i))
            lit = _unquote('"' + src[i + 1:j] + '"')
            toks.append(("const", ord(lit[0]) if lit else 0, i))
            i = j + 1
            prev_adjacent = False
            continue
        if c.isdigit() or (c in "+-" and i + 1 < n and (src[i + 1].isdigit() or src[i + 1] == ".")):
            j = i + 1
            while j < n and (src[j].isalnum() or src[j] in "._+-"):
                if src[j] in "+-" and src[j - 1] not in "eEpP":
                    break
                j += 1
            lit = src[i:j]
            toks.append(("const", _number(lit, src, i), i))
            prev_adjacent = False
            i = j
            continue
        if c == ":" and src.startswith(":=", i):
            toks.append(("declare", ":=", i))
            i += 2
            prev_adjacent = False
            continue
        if c in _PUNCT:
            toks.append((c, c, i))
            prev_adjacent = c == ")"
            i += 1
            continue
        if c.isalpha() or c == "_":
            j = i
            while j < n and (src[j].isalnum() or src[j] == "_"):
                j += 1
            word = src[i:j]
            if word in ("true", "false"):
                toks.append(("const", word == "true", i))
            elif word == "nil":
                toks.append(("nil", None, i))
            else:
                toks.append(("ident", word, i))
            prev_adjacent = False
            i = j
            continue
        raise ParseError("template: :%d: unexpected %r in command" % (_pos_line(src, i), c))


def _unquote(lit):
    body = lit[1:-1]
    if "\\" not in body:
        return body
    out = []
    i = 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
              "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1:i + 2]
        if e == "x":
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        elif e == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif e == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        elif e in simple:
            out.append(simple[e])
            i += 2
        else:
            raise ParseError("template: :1: invalid syntax in quoted string %s" % lit)
    return "".join(out)


def _number(lit, src, pos):
    t = lit.replace("_", "")
    body = t.lstrip("+-")
    try:
        if body.isdigit() and len(body) > 1 and body[0] == "0":
            return int(t, 8)  # Go: a leading 0 means octal
        try:
            return int(t, 0)
        except ValueError:
            return float(t)
    except ValueError:
        raise ParseError("template: :%d: bad number syntax: %s" % (_pos_line(src, pos), lit)) \
            from None


# --- parser --------------------------------------------------------------------

class Node:
    __slots__ = ()


class Text(Node):
    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


class Action(Node):
    __slots__ = ("pipe", "pos")

    def __init__(self, pipe, pos):
        self.pipe = pipe
        self.pos = pos


class Branch(Node):
    __slots__ = ("kind", "pipe", "body", "else_body", "pos")

    def __init__(self, kind, pipe, body, else_body, pos):
        self.kind = kind
        self.pipe = pipe
        self.body = body
        self.else_body = else_body
        self.pos = pos


class Pipe:
    __slots__ = ("decl", "assign", "cmds", "pos")

    def __init__(self, decl, assign, cmds, pos):
        self.decl = decl
        self.assign = assign
        self.cmds = cmds
        self.pos = pos


class Operand:
    """kind: field (chain from dot), var (name + chain), dot, const, nil, ident, pipe."""
    __slots__ = ("kind", "value", "chain", "pos", "text")

    def __init__(self, kind, value, chain, pos, text):
        self.kind = kind
        self.value = value
        self.chain = chain
        self.pos = pos
        self.text = text


class _Parser:
    def __init__(self, src):
        self.src = src
        self.items = _lex(src)
        self.i = 0

    def error(self, msg, pos=None):
        line = _pos_line(self.src, pos if pos is not None else len(self.src))
        raise ParseError("template: :%d: %s" % (line, msg))

    def parse(self):
        body, end = self.parse_list(())
        if end is not None:
            self.error("unexpected {{%s}}" % end[0], end[1])
        return body

    def parse_list(self, terminators):
        """Parse until one of terminators ('end', 'else'); -> (nodes, (word, pos, toks))."""
        nodes = []
        while self.i < len(self.items):
            kind, val, pos = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(Text(val))
                continue
            toks = val
            if not toks:
                self.error("missing value for command", pos)
            head = toks[0]
            if head[0] == "ident" and head[1] in ("end", "else"):
                if head[1] not in terminators:
                    self.error("unexpected {{%s}}" % head[1], pos)
                return nodes, (head[1], pos, toks[1:])
            if head[0] == "ident" and head[1] in ("if", "range", "with"):
                nodes.append(self.parse_branch(head[1], toks[1:], pos))
                continue
            if head[0] == "ident" and head[1] in ("define", "template", "block", "break",
                                                  "continue"):
                self.error("{{%s}} is not supported by trioctr's templates" % head[1], pos)
            nodes.append(Action(self.parse_pipe(toks, pos, allow_decl=True), pos))
        if terminators:
            self.error("unexpected EOF")
        return nodes, None

    def parse_branch(self, kind, toks, pos):
        if not toks:
            self.error("missing value for %s" % kind, pos)
        pipe = self.parse_pipe(toks, pos, allow_decl=True, for_range=(kind == "range"))
        body, end = self.parse_list(("end", "else"))
        else_body = None
        if end[0] == "else":
            rest = end[2]
            if rest and rest[0][0] == "ident" and rest[0][1] in ("if", "with") and kind != "range":
                # else if / else with: a nested branch that shares our {{end}}
                else_body = [self.parse_branch(rest[0][1], rest[1:], end[1])]
                return Branch(kind, pipe, body, else_body, pos)
            if rest:
                self.error("unexpected tokens after else", end[1])
            else_body, end2 = self.parse_list(("end",))
        return Branch(kind, pipe, body, else_body, pos)

    def parse_pipe(self, toks, pos, allow_decl=False, for_range=False):
        decl = []
        assign = False
        # variable declarations: $x := / $k, $v :=
        if allow_decl and toks and toks[0][0] == "var":
            j = 0
            names = []
            while j < len(toks) and toks[j][0] == "var":
                names.append(toks[j][1])
                j += 1
                if j < len(toks) and toks[j][0] == ",":
                    j += 1
                    continue
                break
            if j < len(toks) and toks[j][0] in ("declare", "="):
                if len(names) > (2 if for_range else 1):
                    self.error("too many declarations", pos)
                decl = names
                assign = toks[j][0] == "="
                toks = toks[j + 1:]
        cmds = []
        cur = []
        depth = 0
        for t in toks:
            if t[0] == "(":
                depth += 1
            elif t[0] == ")":
                depth -= 1
            if t[0] == "|" and depth == 0:
                cmds.append(cur)
                cur = []
            else:
                cur.append(t)
        cmds.append(cur)
        out = []
        for c in cmds:
            if not c:
                self.error("missing value for command", pos)
            out.append(self.parse_command(c, pos))
        return Pipe(decl, assign, out, pos)

    def parse_command(self, toks, pos):
        operands = []
        i = 0
        while i < len(toks):
            op, i = self.parse_operand(toks, i, pos)
            operands.append(op)
        return operands

    def parse_operand(self, toks, i, pos):
        t = toks[i]
        kind = t[0]
        if kind == "field":
            chain = [t[1]]
            fpos = t[2]
            j = i + 1
            while j < len(toks) and toks[j][0] == "field" and toks[j][3]:
                if len(chain) == 1:
                    fpos = toks[j][2]
                chain.append(toks[j][1])
                j += 1
            return Operand("field", None, chain, fpos, "." + ".".join(chain)), j
        if kind == "var":
            chain = []
            j = i + 1
            fpos = t[2]
            while j < len(toks) and toks[j][0] == "field" and toks[j][3]:
                chain.append(toks[j][1])
                j += 1
            text = t[1] + "".join("." + c for c in chain)
            return Operand("var", t[1], chain, fpos, text), j
        if kind == "dot":
            return Operand("dot", None, [], t[2], "."), i + 1
        if kind == "const":
            v = t[1]
            return Operand("const", v, [], t[2], repr(v)), i + 1
        if kind == "nil":
            return Operand("nil", None, [], t[2], "nil"), i + 1
        if kind == "ident":
            return Operand("ident", t[1], [], t[2], t[1]), i + 1
        if kind == "(":
            depth = 0
            j = i
            while j < len(toks):
                if toks[j][0] == "(":
                    depth += 1
                elif toks[j][0] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(toks):
                self.error("unclosed left paren", t[2])
            inner = self.parse_pipe(toks[i + 1:j], t[2], allow_decl=False)
            chain = []
            k = j + 1
            while k < len(toks) and toks[k][0] == "field" and toks[k][3]:
                chain.append(toks[k][1])
                k += 1
            return Operand("pipe", inner, chain, t[2], "(...)"), k
        if kind == ")":
            self.error("unexpected right paren", t[2])
        self.error("unexpected %s in operand" % (t[1],), t[2])


def parse(src):
    return Template(src, _Parser(src).parse())


# --- values ---------------------------------------------------------------------

_MAP_FIELDS = frozenset(("Labels", "Attributes", "Options", "DriverOpts", "Data", "Volumes",
                         "ExposedPorts", "Ports", "Networks", "Sysctls", "Annotations", "Tmpfs",
                         "StorageOpt", "Details", "Runtimes", "IndexConfigs"))


def _struct_like(d):
    """Heuristic: a JSON object whose keys are all Go-exported names came from a
    Go struct (prints as {v1 v2}, missing keys are errors); anything else is a map."""
    if not d:
        return False
    for k in d:
        if not k or not ("A" <= k[0] <= "Z"):
            return False
    return True


def fmt_value(v):
    """fmt.Sprint(v) (%v) for JSON-shaped values."""
    if isinstance(v, str):
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "<nil>"
    if v is MISSING:
        return "<no value>"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        from cli.fmt import go_float
        return go_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, dict):
        if getattr(v, "is_map", None) is True or not _struct_like(v):
            return "map[" + " ".join("%s:%s" % (k, fmt_value(v[k])) for k in sorted(v)) + "]"
        return "{" + " ".join(fmt_value(x) for x in v.values()) + "}"
    return str(v)


def _truth(v):
    if v is None or v is MISSING or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, tuple, dict)):
        return len(v) > 0
    return True


def _json(v):
    from cli.fmt import go_json
    to_json = getattr(v, "tmpl_json", None)
    if to_json is not None:
        return to_json()
    return go_json(_plain(v), escape_html=False)


def _plain(v):
    if v is MISSING:
        return None
    if hasattr(v, "tmpl_json"):
        import json
        return json.loads(v.tmpl_json())
    return v


def _title(s):
    out = []
    prev = " "
    for ch in s:
        out.append(ch.upper() if not (prev.isalnum() or prev == "_" or prev == "'") else ch)
        prev = ch
    return "".join(out)


def _printf(fmt, *args):
    out = []
    i = 0
    ai = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "+-# 0123456789.":
            j += 1
        if j >= len(fmt):
            out.append("%!(NOVERB)")
            break
        verb = fmt[j]
        spec = fmt[i + 1:j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            out.append("%!" + verb + "(MISSING)")
            continue
        a = args[ai]
        ai += 1
        if verb in "vs":
            s = fmt_value(a)
        elif verb == "q":
            from cli.fmt import go_quote
            s = go_quote(fmt_value(a))
        elif verb == "d" and isinstance(a, int):
            s = str(a)
        elif verb in "fFeEgG" and isinstance(a, (int, float)):
            s = ("%" + spec + verb) % a
            spec = ""
        elif verb == "x" and isinstance(a, int):
            s = "%x" % a
        elif verb == "t" and isinstance(a, bool):
            s = "true" if a else "false"
        else:
            s = "%!" + verb + "(" + fmt_value(a) + ")"
        if spec and spec.lstrip("-").isdigit():
            w = int(spec.lstrip("-"))
            s = s.ljust(w) if spec.startswith("-") else s.rjust(w)
        out.append(s)
    return "".join(out)


def _index(v, *keys):
    for k in keys:
        if isinstance(v, dict):
            v = v.get(k, MISSING) if not isinstance(k, str) or k in v else MISSING
        elif isinstance(v, (list, tuple, str)):
            if not isinstance(k, int) or not 0 <= k < len(v):
                raise ExecError("error calling index: index out of range: %s" % fmt_value(k))
            v = v[k]
        elif v is None or v is MISSING:
            raise ExecError("error calling index: index of untyped nil")
        else:
            raise ExecError("error calling index: can't index item of type %s" % type(v).__name__)
    return v


def _len(v):
    if isinstance(v, (str, list, tuple, dict)):
        return len(v)
    raise ExecError("error calling len: len of type %s" % type(v).__name__)


def _cmp(name, op):
    def f(a, *bs):
        if not bs:
            raise ExecError("wrong number of args for %s: want at least 2 got 1" % name)
        if name == "eq":
            return any(a == b for b in bs)
        b = bs[0]
        try:
            return op(a, b)
        except TypeError:
            raise ExecError("error calling %s: incompatible types for comparison" % name) from None
    return f


def _println(*args):
    return " ".join(fmt_value(a) for a in args) + "\n"


def _print(*args):
    out = []
    prev_str = True
    for i, a in enumerate(args):
        is_str = isinstance(a, str)
        if i > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(fmt_value(a))
        prev_str = is_str
    return "".join(out)


def _split(s, sep):
    return s.split(sep) if sep else list(s)


def _join(v, sep):
    if isinstance(v, str):
        return v
    return sep.join(fmt_value(x) for x in (v or []))


FUNCS = {
    "json": _json,
    "join": _join,
    "split": _split,
    "lower": lambda s: fmt_value(s).lower(),
    "upper": lambda s: fmt_value(s).upper(),
    "title": lambda s: _title(fmt_value(s)),
    "pad": lambda s, l, r: " " * l + fmt_value(s) + " " * r,
    "truncate": lambda s, n: fmt_value(s)[:n],
    "println": _println,
    "print": _print,
    "printf": _printf,
    "len": _len,
    "index": _index,
    "eq": _cmp("eq", None),
    "ne": lambda a, b: a != b,
    "lt": _cmp("lt", lambda a, b: a < b),
    "le": _cmp("le", lambda a, b: a <= b),
    "gt": _cmp("gt", lambda a, b: a > b),
    "ge": _cmp("ge", lambda a, b: a >= b),
    "not": lambda a: not _truth(a),
}


class _Break(Exception):
    pass


# --- execution ------------------------------------------------------------------

class Template:
    def __init__(self, src, nodes):
        self.src = src
        self.nodes = nodes
        self.missing_error = True
        self.funcs = FUNCS

    def _at(self, pos, text, msg):
        line = _pos_line(self.src, pos)
        col = pos - (self.src.rfind("\n", 0, pos) + 1)
        return ExecError('template: :%d:%d: executing "" at <%s>: %s' % (line, col, text, msg))

    def execute(self, data):
        out = []
        self._run(self.nodes, data, [("$", data)], out)
        return "".join(out)

    def _run(self, nodes, dot, vars_, out):
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                v = self._pipe(node.pipe, dot, vars_)
                if not node.pipe.decl:
                    out.append(fmt_value(v))
            else:
                self._branch(node, dot, vars_, out)

    def _branch(self, node, dot, vars_, out):
        pipe = node.pipe
        if node.kind == "range":
            val = self._pipe(Pipe([], False, pipe.cmds, pipe.pos), dot, vars_)
            if isinstance(val, dict):
                items = [(k, val[k]) for k in sorted(val)]
            elif isinstance(val, (list, tuple)):
                items = list(enumerate(val))
            elif isinstance(val, int) and not isinstance(val, bool):
                items = [(i, i) for i in range(val)]
            elif val is None or val is MISSING:
                items = []
            else:
                raise self._at(pipe.pos, "range", "range can't iterate over %s" % fmt_value(val))
            if not items:
                if node.else_body:
                    self._run(node.else_body, dot, vars_, out)
                return
            for k, v in items:
                scope = list(vars_)
                if len(pipe.decl) == 1:
                    scope.append((pipe.decl[0], v))
                elif len(pipe.decl) == 2:
                    scope.append((pipe.decl[0], k))
                    scope.append((pipe.decl[1], v))
                self._run(node.body, v, scope, out)
            return
        scope = list(vars_)
        val = self._pipe(pipe, dot, scope)
        if _truth(val):
            self._run(node.body, val if node.kind == "with" else dot, scope, out)
        elif node.else_body:
            self._run(node.else_body, dot, scope, out)

    def _pipe(self, pipe, dot, vars_):
        val = MISSING
        first = True
        for cmd in pipe.cmds:
            val = self._command(cmd, dot, vars_, None if first else val, not first)
            first = False
        if pipe.decl:
            if pipe.assign:
                for i in range(len(vars_) - 1, -1, -1):
                    if vars_[i][0] == pipe.decl[0]:
                        vars_[i] = (pipe.decl[0], val)
                        break
                else:
                    raise self._at(pipe.pos, pipe.decl[0], "undefined variable: %s" % pipe.decl[0])
            else:
                vars_.append((pipe.decl[0], val))
        return val

    def _command(self, ops, dot, vars_, final, has_final):
        head = ops[0]
        args = ops[1:]
        if head.kind == "ident":
            fn = self.funcs.get(head.value)
            if fn is None:
                if head.value in ("and", "or"):
                    return self._andor(head, args, dot, vars_, final, has_final)
                raise ParseError('template: :%d: function "%s" not defined'
                                 % (_pos_line(self.src, head.pos), head.value))
            vals = [self._operand(a, dot, vars_) for a in args]
            if has_final:
                vals.append(final)
            try:
                return fn(*vals)
            except ExecError as e:
                raise self._at(head.pos, head.text, str(e)) from None
            except TypeError:
                raise self._at(head.pos, head.text, "wrong number of args for %s" % head.value) \
                    from None
        if head.kind == "field" or (head.kind in ("var", "pipe") and head.chain):
            vals = [self._operand(a, dot, vars_) for a in args]
            if has_final:
                vals.append(final)
            return self._operand(head, dot, vars_, call_args=vals)
        if args or has_final:
            raise self._at(head.pos, head.text, "can't give argument to non-function %s" % head.text)
        return self._operand(head, dot, vars_)

    def _andor(self, head, args, dot, vars_, final, has_final):
        want = head.value == "and"
        v = MISSING
        items = list(args)
        if not items and not has_final:
            raise self._at(head.pos, head.text, "wrong number of args for %s" % head.value)
        for a in items:
            v = self._operand(a, dot, vars_)
            if _truth(v) != want:
                return v
        if has_final:
            v = final
        return v

    def _operand(self, op, dot, vars_, call_args=None):
        kind = op.kind
        if kind == "const":
            return op.value
        if kind == "nil":
            return None
        if kind == "dot":
            return dot
        if kind == "ident":
            fn = self.funcs.get(op.value)
            if fn is None:
                raise ParseError('template: :%d: function "%s" not defined'
                                 % (_pos_line(self.src, op.pos), op.value))
            return fn()
        if kind == "field":
            return self._chain(dot, op.chain, op, call_args)
        if kind == "var":
            for name, v in reversed(vars_):
                if name == op.value:
                    base = v
                    break
            else:
                raise ParseError('template: :%d: undefined variable "%s"'
                                 % (_pos_line(self.src, op.pos), op.value))
            return self._chain(base, op.chain, op, call_args) if op.chain else base
        if kind == "pipe":
            base = self._pipe(op.value, dot, vars_)
            return self._chain(base, op.chain, op, call_args) if op.chain else base
        raise self._at(op.pos, op.text, "unsupported operand")

    def _chain(self, v, chain, op, call_args):
        last = len(chain) - 1
        for i, name in enumerate(chain):
            args = call_args if i == last else None
            v = self._field(v, name, op, args)
        return v

    def _field(self, v, name, op, args):
        getter = getattr(v, "tmpl_field", None)
        if getter is not None:
            try:
                r = getter(name)
            except KeyError:
                raise self._at(op.pos, op.text, "can't evaluate field %s in type %s"
                               % (name, getattr(v, "tmpl_type", "*formatter.Context"))) from None
            if callable(r):
                try:
                    return r(*(args or ()))
                except TypeError:
                    raise self._at(op.pos, op.text, "wrong number of args for %s" % name) from None
            if args:
                raise self._at(op.pos, op.text, "%s has arguments but cannot be invoked as function"
                               % name)
            return r
        if args:
            raise self._at(op.pos, op.text, "%s has arguments but cannot be invoked as function"
                           % name)
        if isinstance(v, dict):
            if name in v:
                return v[name]
            low = name.lower()
            for k in v:
                if k.lower() == low:
                    return v[k]
            if self.missing_error and _struct_like(v) and getattr(v, "is_map", None) is not True:
                raise self._at(op.pos, op.text, 'map has no entry for key "%s"' % name)
            return MISSING
        if v is None or v is MISSING:
            raise self._at(op.pos, op.text, "nil pointer evaluating interface {}.%s" % name)
        raise self._at(op.pos, op.text, "can't evaluate field %s in type %s"
                       % (name, _go_type(v)))


def _go_type(v):
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, list):
        return "[]interface {}"
    return "interface {}"


class MapDict(dict):
    """A dict that is a Go map (prints map[..], missing keys are <no value>)."""
    is_map = True


# --- docker's Format handling (table/json/raw) ----------------------------------------

def prepare(fmt):
    """docker's Context.preFormat: -> (is_table, template source)."""
    is_table = fmt.startswith("table")
    if is_table:
        fmt = fmt[len("table"):]
    elif fmt == "json":
        fmt = "{{json .}}"
    fmt = fmt.strip(" ")
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    return is_table, fmt


def render_rows(fmt, rows, header=None):
    """Render rows (template contexts) with a docker format string; a table
    gets a header line (the template run over `header`) and tabwriter
    alignment (minwidth 10, padding 3).  Returns the text to print."""
    is_table, src = prepare(fmt)
    tmpl = parse(src)
    out = []
    for r in rows:
        out.append(tmpl.execute(r))
        out.append("\n")
    body = "".join(out)
    if is_table:
        from cli.fmt import tabwrite
        head = tmpl.execute(header) if header is not None else ""
        return tabwrite(head + "\n" + body, 10, 1, 3)
    return body
