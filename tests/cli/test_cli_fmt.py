"""Output formatting: Go's tabwriter, strconv.Quote, json.Indent; docker's Ellipsis,
TruncateID, DisplayablePorts and the ps/images rows."""

import json
import time

import pytest

from cli.fmt import tabwrite, go_quote, ellipsis, truncate_id, json_indent, go_json, go_float
from cli.containers import displayable_ports, ContainerRow, DEFAULT_PS_FORMAT, HeaderCtx, \
    _CONTAINER_HEADERS, filters_json
from cli.images import image_rows, _IMAGE_HEADERS
from cli.template import render_rows


def test_tabwrite_pads_columns_to_widest_cell_plus_three():
    text = "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox:latest\tx\n"
    assert tabwrite(text) == ("CONTAINER ID   IMAGE            NAMES\n"
                              "abc            busybox:latest   x\n")


def test_tabwrite_minwidth_and_empty_cells():
    text = "A\tB\tC\n\t\tz\n"
    assert tabwrite(text) == "A         B         C\n                    z\n"


def test_tabwrite_counts_runes_not_bytes():
    text = "X\tY\nh\u00e9llo\u2026\t1\nab\t2\n"
    assert tabwrite(text, 1, 1, 3) == "X        Y\nh\u00e9llo\u2026   1\nab       2\n"


def test_tabwrite_column_blocks_like_go():
    # a line without the column ends the block: widths are computed per block
    text = "aaaaaaaaaaaaaa\tb\nx\ty\nno tabs here\nc\td\n"
    assert tabwrite(text, 0, 1, 1) == ("aaaaaaaaaaaaaa b\nx              y\nno tabs here\nc d\n")


def test_tabwrite_top_style():
    text = "UID\tPID\tCMD\nroot\t12345\tsleep 100\n"
    assert tabwrite(text, 20, 1, 3) == (
        "UID" + " " * 17 + "PID" + " " * 17 + "CMD\n"
        "root" + " " * 16 + "12345" + " " * 15 + "sleep 100\n")


@pytest.mark.parametrize("s,want", [
    ("sh -c 'echo hi'", "\"sh -c 'echo hi'\""),
    ('a "b" \\', '"a \\"b\\" \\\\"'),
    ("tab\there\nnl", '"tab\\there\\nnl"'),
    ("\x01\x7f", '"\\x01\\x7f"'),
    ("h\u00e9llo \u2026", '"h\u00e9llo \u2026"'),
    ("\u2028", '"\\u2028"'),
])
def test_go_quote(s, want):
    assert go_quote(s) == want


@pytest.mark.parametrize("s,n,want", [
    ("sh -c 'echo hi; sleep 1000000'", 20, "sh -c 'echo hi; sle\u2026"),
    ("/bin/true", 20, "/bin/true"),
    ("12345678901234567890", 20, "12345678901234567890"),
    ("123456789012345678901", 20, "1234567890123456789\u2026"),
    ("h\u00e9llo w\u00f6rld \u00fcn\u00efcode chars 123", 20, "h\u00e9llo w\u00f6rld \u00fcn\u00efcode\u2026"),
    ("\u4f60\u597d\u4e16\u754c\u4f60\u597d", 5, "\u4f60\u597d\u2026"),
    ("abc", 1, "a"), ("abc", 0, ""),
])
def test_ellipsis(s, n, want):
    assert ellipsis(s, n) == want


def test_truncate_id():
    assert truncate_id("sha256:" + "a" * 64) == "a" * 12
    assert truncate_id("b" * 64) == "b" * 12
    assert truncate_id("short") == "short"


@pytest.mark.parametrize("obj", [
    [], {}, [{"Id": "x", "A": [], "B": {}, "C": [1, {"d": None}], "E": "s\\\"q"}],
    {"nested": {"deep": [[], [1, 2], {"k": True}]}, "f": 1.5}, "plain", 12,
])
def test_json_indent_matches_go(obj):
    compact = json.dumps(obj, separators=(",", ":"))
    want = json.dumps(obj, indent=4)
    # Go keeps "[]" and "{}" compact, like Python does for empty containers
    assert json_indent(compact) == want
    # loose input (spaces, newlines) gives the same result
    assert json_indent(json.dumps(obj, indent=1)) == want


def test_json_indent_keeps_raw_string_escapes():
    assert json_indent('{"a":"\\u003c\\u00e9 , : [ ] { }"}') == \
        '{\n    "a": "\\u003c\\u00e9 , : [ ] { }"\n}'


def test_go_json_escaping():
    assert go_json({"p": "0.0.0.0:80->80/tcp & <b>"}) == \
        '{"p":"0.0.0.0:80-\\u003e80/tcp \\u0026 \\u003cb\\u003e"}'
    assert go_json({"p": "<b>"}, escape_html=False) == '{"p":"<b>"}'
    assert go_json({"u": "\u00e9\u2028"}) == '{"u":"\u00e9\\u2028"}'


def test_go_float():
    assert [go_float(x) for x in (1.5, 1.5e9, 123456.0, 1234567.0, 1e-5, 100.0, -2.5)] == \
        ["1.5", "1.5e+09", "123456", "1.234567e+06", "1e-05", "100", "-2.5"]


@pytest.mark.parametrize("ports,want", [
    ([{"PrivatePort": 9988, "Type": "tcp"}], "9988/tcp"),
    ([{"IP": "0.0.0.0", "PrivatePort": 9988, "Type": "tcp"}], "0.0.0.0:0->9988/tcp"),
    ([{"IP": "::", "PrivatePort": 9988, "Type": "tcp"}], "[::]:0->9988/tcp"),
    ([{"PrivatePort": 9988, "PublicPort": 8899, "Type": "tcp"}], "9988/tcp"),
    ([{"IP": "4.3.2.1", "PrivatePort": 9988, "PublicPort": 8899, "Type": "tcp"}],
     "4.3.2.1:8899->9988/tcp"),
    ([{"IP": "4.3.2.1", "PrivatePort": 9988, "PublicPort": 9988, "Type": "tcp"}],
     "4.3.2.1:9988->9988/tcp"),
    ([{"PrivatePort": 9988, "Type": "udp"}, {"PrivatePort": 9988, "Type": "udp"}],
     "9988/udp, 9988/udp"),
    ([{"IP": "1.2.3.4", "PublicPort": 9998, "PrivatePort": 9998, "Type": "udp"},
      {"IP": "1.2.3.4", "PublicPort": 9999, "PrivatePort": 9999, "Type": "udp"}],
     "1.2.3.4:9998-9999->9998-9999/udp"),
    ([{"PrivatePort": 9998, "Type": "udp"}, {"PrivatePort": 9999, "Type": "udp"}], "9998-9999/udp"),
    ([{"PrivatePort": 80, "Type": "tcp"}, {"PrivatePort": 1024, "Type": "tcp"},
      {"PrivatePort": 80, "Type": "udp"}, {"PrivatePort": 1024, "Type": "udp"}],
     "80/tcp, 80/udp, 1024/tcp, 1024/udp"),
    ([], ""), (None, ""),
])
def test_displayable_ports(ports, want):
    assert displayable_ports(ports) == want


NOW = 1700000000


def _container(**kw):
    c = {"Id": "a" * 64, "Names": ["/x"], "Image": "busybox", "ImageID": "sha256:" + "1" * 64,
         "Command": "sh -c 'echo hi; sleep 1000000'", "Created": NOW - 125, "State": "running",
         "Status": "Up 2 minutes", "Ports": [], "Labels": {"b": "2", "a": "1"}}
    c.update(kw)
    return c


def test_ps_table_matches_docker():
    rows = [ContainerRow(_container(), True, NOW),
            ContainerRow(_container(Id="1234567890ab" + "0" * 52, Names=["/long_container_name",
                                                                         "/other/link"],
                                    Image="localhost:5000/foo/bar:v1", Command="/bin/true",
                                    Created=NOW - 4000, State="exited",
                                    Status="Exited (0) About an hour ago",
                                    Ports=[{"PrivatePort": 80, "Type": "tcp"}]), True, NOW)]
    out = render_rows(DEFAULT_PS_FORMAT, rows, HeaderCtx(_CONTAINER_HEADERS))
    assert out == (
        "CONTAINER ID   IMAGE                       COMMAND                  CREATED         "
        "    STATUS                         PORTS     NAMES\n"
        "aaaaaaaaaaaa   busybox                     \"sh -c 'echo hi; sle\u2026\"   2 minutes ago "
        "      Up 2 minutes                             x\n"
        "1234567890ab   localhost:5000/foo/bar:v1   \"/bin/true\"              About an hour ago "
        "  Exited (0) About an hour ago   80/tcp    long_container_name\n")


def test_plain_table_equals_the_template_rendering():
    from cli.containers import plain_table, DEFAULT_PS_FIELDS
    rows = [ContainerRow(_container(), True, NOW),
            ContainerRow(_container(Names=["/\u00e9t\u00e9"], Command="x" * 40), False, NOW)]
    for fields in (DEFAULT_PS_FIELDS, DEFAULT_PS_FIELDS + ("Size",)):
        fmt = "table " + "\t".join("{{.%s}}" % f for f in fields)
        assert plain_table(fields, rows, _CONTAINER_HEADERS) == \
            render_rows(fmt, rows, HeaderCtx(_CONTAINER_HEADERS))
    assert plain_table(DEFAULT_PS_FIELDS, [], _CONTAINER_HEADERS) == \
        render_rows(DEFAULT_PS_FORMAT, [], HeaderCtx(_CONTAINER_HEADERS))


def test_ps_row_fields():
    r = ContainerRow(_container(Names=["/x", "/y/link"], Image="docker.io/library/busybox:latest"),
                     True, NOW)
    assert r.tmpl_field("Names") == "x"
    assert r.tmpl_field("Image") == "busybox:latest"
    assert r.tmpl_field("Labels") == "a=1,b=2"
    assert r.tmpl_field("Label")("b") == "2"
    assert r.tmpl_field("RunningFor") == "2 minutes ago"
    assert r.tmpl_field("Size") == "0B"
    nt = ContainerRow(_container(Names=["/x", "/y/link"]), False, NOW)
    assert nt.tmpl_field("Names") == "x,y/link"
    assert nt.tmpl_field("ID") == "a" * 64
    assert nt.tmpl_field("Command") == "\"sh -c 'echo hi; sleep 1000000'\""
    same = ContainerRow(_container(Image="sha256:" + "1" * 64), True, NOW)
    assert same.tmpl_field("Image") == "1" * 12
    dig = ContainerRow(_container(Image="foo/bar:1@sha256:" + "2" * 64), True, NOW)
    assert dig.tmpl_field("Image") == "foo/bar:1"
    j = json.loads(r.tmpl_json())
    assert sorted(j) == sorted(ContainerRow.FIELDS)
    assert j["Platform"] is None and j["LocalVolumes"] == "0"
    with pytest.raises(KeyError):
        r.tmpl_field("Nope")


def test_images_rows_like_docker():
    imgs = [
        {"Id": "sha256:" + "a" * 64, "RepoTags": ["busybox:latest", "busybox:1",
                                                  "localhost:5000/busybox:x"],
         "RepoDigests": ["busybox@sha256:" + "1" * 64], "Created": NOW - 200000,
         "Size": 4261550},
        {"Id": "sha256:" + "b" * 64, "RepoTags": [], "RepoDigests": [], "Created": NOW - 7200,
         "Size": 999},
        {"Id": "sha256:" + "c" * 64, "RepoTags": None,
         "RepoDigests": ["foo/bar@sha256:" + "2" * 64], "Created": NOW - 40000000,
         "Size": 123456789012},
    ]
    fmt = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    out = render_rows(fmt, image_rows(imgs, False, True, NOW), HeaderCtx(_IMAGE_HEADERS))
    assert out == (
        "REPOSITORY               TAG       IMAGE ID       CREATED         SIZE\n"
        "busybox                  latest    aaaaaaaaaaaa   2 days ago      4.26MB\n"
        "busybox                  1         aaaaaaaaaaaa   2 days ago      4.26MB\n"
        "localhost:5000/busybox   x         aaaaaaaaaaaa   2 days ago      4.26MB\n"
        "<none>                   <none>    bbbbbbbbbbbb   2 hours ago     999B\n"
        "foo/bar                  <none>    cccccccccccc   15 months ago   123GB\n")
    rows = image_rows(imgs, True, True, NOW)
    assert [r.f_Digest() for r in rows] == ["sha256:" + "1" * 64] * 2 + ["<none>"] * 2 + \
        ["sha256:" + "2" * 64]
    j = json.loads(rows[3].tmpl_json())
    assert j["Repository"] == "<none>" and j["Containers"] == "N/A"
    assert '"\\u003cnone\\u003e"' in rows[3].tmpl_json()


def test_filters_json():
    assert filters_json([]) is None
    assert json.loads(filters_json(["status=exited", "Name=x", "status=created", "label=a=b"])) == \
        {"label": {"a=b": True}, "name": {"x": True},
         "status": {"created": True, "exited": True}}


def test_table_header_for_label_and_custom_columns():
    rows = [ContainerRow(_container(Labels={"com.example.my_label": "v"}), True, NOW)]
    out = render_rows('table {{.ID}}\t{{.Label "com.example.my_label"}}', rows,
                      HeaderCtx(_CONTAINER_HEADERS))
    assert out == "CONTAINER ID   my label\naaaaaaaaaaaa   v\n"


def test_now_is_used_for_created():
    r = ContainerRow(_container(Created=int(time.time())), True, time.time())
    assert r.f_RunningFor() == "Less than a second ago"
