"""The Go text/template subset used by --format."""

import pytest

from cli.template import parse, ParseError, ExecError, MapDict, render_rows, prepare

DATA = {
    "Id": "abc123", "Name": "/x",
    "State": {"Status": "running", "Running": True, "Pid": 42, "ExitCode": 0, "Health": None},
    "Config": {"Labels": {"a": "b<>", "c": ""}, "Env": ["A=1", "B=2"], "Cmd": ["sh"]},
    "HostConfig": {"Memory": 1048576, "NanoCpus": 1500000000},
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"},
                                     "alt": {"IPAddress": "10.0.0.2"}}},
    "F": 1.5, "Empty": [], "EmptyO": {},
}


def run(src, data=DATA):
    return parse(src).execute(data)


@pytest.mark.parametrize("src,want", [
    ("{{.State.Status}} {{.Id}}", "running abc123"),
    ("{{.ID}}", "abc123"),                                  # case-insensitive fallback
    ("{{json .Config.Labels}}", '{"a":"b<>","c":""}'),       # no HTML escaping, like docker
    ("{{.Config.Labels}}", "map[a:b<> c:]"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.State.Health}}", "<nil>"),
    ("{{.State}}", "{running true 42 0 <nil>}"),
    ("{{.HostConfig.Memory}} {{.F}} {{.Empty}} {{.EmptyO}}", "1048576 1.5 [] map[]"),
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "10.0.0.2 172.17.0.2 "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=b<>;c=;"),
    ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
    ("{{range .Empty}}x{{else}}none{{end}}", "none"),
    ("{{index .Config.Labels \"a\"}}", "b<>"),
    ("{{index .Config.Env 1}}", "B=2"),
    ("{{.Config.Labels.a}}", "b<>"),
    ("{{.Config.Labels.zz}}", "<no value>"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if eq .State.Status \"exited\"}}E{{else if .State.Running}}R{{else}}?{{end}}", "R"),
    ("{{if and .State.Running (eq .State.Pid 42)}}yes{{end}}", "yes"),
    ("{{if or .Empty .F}}{{.F}}{{end}}", "1.5"),
    ("{{if not .Empty}}empty{{end}}", "empty"),
    ("{{with .State}}{{.Pid}}{{end}}", "42"),
    ("{{with .Empty}}x{{else}}y{{end}}", "y"),
    ("{{$n := .Name}}{{$n}}{{$n}}", "/x/x"),
    ("{{len .Config.Env}} {{len .Name}}", "2 2"),
    ("{{join .Config.Env \",\"}}", "A=1,B=2"),
    ("{{split \"a:b\" \":\"}}", "[a b]"),
    ("{{upper .Name}} {{lower \"AbC\"}} {{title \"hello world\"}}", "/X abc Hello World"),
    ("{{pad .Name 1 2}}|", " /x  |"),
    ("{{truncate .Id 3}}", "abc"),
    ("{{println .Name}}x", "/x\nx"),
    ("{{printf \"%s-%d\" .Name .State.Pid}}", "/x-42"),
    ("{{.Name | printf \"%q\"}}", '"/x"'),
    ("{{.Config.Env | len}}", "2"),
    ("{{(index .Config.Env 0)}}", "A=1"),
    ("{{- \" a \" -}}  b  {{/* comment */}}", " a b  "),
    ("a {{- .Name}}", "a/x"),
    ("{{.Name -}} b", "/xb"),
    ("{{json .}}", None),
    ("{{true}} {{false}} {{1}} {{\"s\"}} {{`raw`}}", "true false 1 s raw"),
    ("{{gt 2 1}} {{lt 2 1}} {{ne .Name \"/x\"}}", "true false false"),
])
def test_templates(src, want):
    out = run(src)
    if want is None:
        import json
        assert json.loads(out) == DATA
    else:
        assert out == want


@pytest.mark.parametrize("src,msg", [
    ("{{.Nope}}", 'template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"'),
    ("{{.State.Nope}}",
     'template: :1:8: executing "" at <.State.Nope>: map has no entry for key "Nope"'),
    ("{{.Name.X}}", 'template: :1:7: executing "" at <.Name.X>: can\'t evaluate field X in '
                    'type string'),
    ("{{.State.Health.Status}}", "nil pointer evaluating interface {}.Status"),
])
def test_exec_errors(src, msg):
    with pytest.raises(ExecError) as ei:
        run(src)
    assert msg in str(ei.value)


@pytest.mark.parametrize("src,msg", [
    ("{{.ID", "template: :1: unclosed action"),
    ("{{foo .}}", 'template: :1: function "foo" not defined'),
    ("{{if .X}}", "template: :1: unexpected EOF"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{\"abc}}", "unterminated quoted string"),
    ("{{$nope}}", 'undefined variable "$nope"'),
])
def test_parse_errors(src, msg):
    with pytest.raises(ParseError) as ei:
        run(src)
    assert msg in str(ei.value)


def test_map_dict_never_errors_on_missing_keys():
    assert run("{{.Missing}}", MapDict({"Upper": 1})) == "<no value>"


class Row:
    def __init__(self, i):
        self.i = i

    def tmpl_field(self, name):
        if name == "N":
            return str(self.i)
        if name == "Label":
            return lambda k: k + str(self.i)
        raise KeyError(name)

    def tmpl_json(self):
        return '{"N":"%d"}' % self.i


class Head:
    def tmpl_field(self, name):
        return {"N": "NUMBER"}.get(name) or (lambda k: k.upper())


def test_context_objects_methods_and_tables():
    assert run('{{.N}} {{.Label "x"}} {{json .}}', Row(7)) == '7 x7 {"N":"7"}'
    with pytest.raises(ExecError, match="can't evaluate field Z"):
        run("{{.Z}}", Row(1))
    out = render_rows("table {{.N}}\\t{{.Label \"k\"}}", [Row(1), Row(22)], Head())
    assert out == "NUMBER    K\n1         k1\n22        k22\n"
    assert render_rows("json", [Row(3)]) == '{"N":"3"}\n'
    assert render_rows("{{.N}}", [Row(1), Row(2)]) == "1\n2\n"


def test_prepare():
    assert prepare("table {{.ID}}\\t{{.Names}}") == (True, "{{.ID}}\t{{.Names}}")
    assert prepare("json") == (False, "{{json .}}")
    assert prepare(" {{.ID}} ") == (False, "{{.ID}}")
