"""Flag parsing (pflag/cobra rules and wording) for every command."""

import importlib
import os

import pytest

from cli import main as climain
from cli.flags import UsageError, HelpRequested, flag_usages

HERE = os.path.dirname(os.path.abspath(__file__))


def parse(cmd, *argv):
    mod = importlib.import_module(climain.COMMANDS[cmd][0])
    spec = mod.spec(cmd)
    return spec.parse(list(argv))


def usage_error(cmd, *argv):
    with pytest.raises(UsageError) as ei:
        parse(cmd, *argv)
    return ei.value


def test_every_command_has_a_spec_and_help():
    for name, (module, short) in climain.COMMANDS.items():
        if module is None:
            continue
        mod = importlib.import_module(module)
        spec = mod.spec(name)
        assert spec.name == name
        text = spec.help(width=80)
        assert text.startswith("Usage:  trioctr %s" % name)
        assert hasattr(mod, "cmd_" + name), name


def test_ps_flags_short_long_combined_and_equals():
    opts, args = parse("ps", "-aq", "--no-trunc", "-n3", "--filter", "status=exited",
                       "-f", "name=x", "--format={{.ID}}")
    assert args == []
    assert opts["all"] and opts["quiet"] and opts["no_trunc"]
    assert opts["last"] == 3
    assert opts["filter"] == ["status=exited", "name=x"]
    assert opts["format"] == "{{.ID}}"
    assert parse("ps", "-n=5")[0]["last"] == 5
    assert parse("ps", "--last", "7")[0]["last"] == 7
    assert parse("ps", "-n", "0x10")[0]["last"] == 16
    assert parse("ps")[0]["last"] == -1
    assert parse("ps", "--all=false")[0]["all"] is False
    assert parse("ps", "-a=true")[0]["all"] is True


def test_pflag_error_wording():
    assert usage_error("ps", "--foo").message == "unknown flag: --foo"
    assert usage_error("ps", "-aqz").message == "unknown shorthand flag: 'z' in -z"
    assert usage_error("ps", "-a-").message == "unknown shorthand flag: '-' in --"
    assert usage_error("ps", "-n").message == "flag needs an argument: 'n' in -n"
    assert usage_error("ps", "-qn").message == "flag needs an argument: 'n' in -n"
    assert usage_error("ps", "--last").message == "flag needs an argument: --last"
    assert usage_error("ps", "--=x").message == "bad flag syntax: --=x"
    e = usage_error("ps", "-n", "x")
    assert e.message == ('invalid argument "x" for "-n, --last" flag: strconv.ParseInt: '
                         'parsing "x": invalid syntax')
    e = usage_error("ps", "--all=3")
    assert e.message == ('invalid argument "3" for "-a, --all" flag: strconv.ParseBool: '
                         'parsing "3": invalid syntax')
    e = usage_error("ps", "-f", "novalue")
    assert e.message == ('invalid argument "novalue" for "-f, --filter" flag: bad format of '
                         'filter (expected name=value)')
    assert e.exit_code == 125
    assert e.render() == ('invalid argument "novalue" for "-f, --filter" flag: bad format of '
                          'filter (expected name=value)\n\nUsage:  trioctr ps [OPTIONS]\n\n'
                          "Run 'trioctr ps --help' for more information")


def test_argument_count_errors_are_cobras():
    e = usage_error("ps", "extra")
    assert e.exit_code == 1
    assert e.render() == ("trioctr: 'trioctr ps' accepts no arguments\n\nUsage:  trioctr ps "
                          "[OPTIONS]\n\nRun 'trioctr ps --help' for more information")
    e = usage_error("stop")
    assert e.render().splitlines()[0] == "trioctr: 'trioctr stop' requires at least 1 argument"
    assert e.render().splitlines()[-1] == "See 'trioctr stop --help' for more information"
    assert usage_error("logs").message == "'trioctr logs' requires 1 argument"
    assert usage_error("logs", "a", "b").message == "'trioctr logs' requires 1 argument"
    assert usage_error("rename", "a").message == "'trioctr rename' requires 2 arguments"
    assert usage_error("exec", "a").message == "'trioctr exec' requires at least 2 arguments"
    assert usage_error("images", "a", "b").message == "'trioctr images' requires at most 1 argument"
    assert usage_error("run").message == "'trioctr run' requires at least 1 argument"
    for cmd in ("events", "version", "info"):
        assert usage_error(cmd, "x").message == "'trioctr %s' accepts no arguments" % cmd


def test_double_dash_ends_flags():
    opts, args = parse("rm", "-f", "--", "-v", "x")
    assert opts["force"] and not opts["volumes"]
    assert args == ["-v", "x"]
    e = usage_error("ps", "--", "-a")
    assert e.message == "'trioctr ps' accepts no arguments"
    opts, args = parse("run", "--rm", "--", "busybox", "--rm")
    assert opts["rm"] and args == ["busybox", "--rm"]


def test_interspersed_flags_for_ordinary_commands():
    opts, args = parse("rm", "a", "-f", "b", "-v")
    assert opts["force"] and opts["volumes"] and args == ["a", "b"]
    opts, args = parse("stop", "x", "-t", "3")
    assert opts["timeout"] == 3 and args == ["x"]


def test_run_stops_parsing_at_the_image():
    opts, args = parse("run", "-dit", "--name", "x", "busybox", "ls", "-l", "--rm", "-e", "A")
    assert opts["detach"] and opts["interactive"] and opts["tty"]
    assert opts["name"] == "x" and not opts["rm"] and opts["env"] == []
    assert args == ["busybox", "ls", "-l", "--rm", "-e", "A"]
    opts, args = parse("exec", "-it", "c1", "sh", "-c", "echo -e")
    assert opts["interactive"] and opts["tty"] and args == ["c1", "sh", "-c", "echo -e"]
    opts, args = parse("top", "c1", "-ef")
    assert args == ["c1", "-ef"]


def test_run_env_forms_and_lists():
    opts, args = parse("run", "-e", "A=1", "-eB=2", "-e=C=3", "--env", "D", "--env=E=",
                       "-l", "a=b", "--label", "c", "busybox")
    assert opts["env"] == ["A=1", "B=2", "C=3", "D", "E="]
    assert opts["label"] == ["a=b", "c"]
    assert "env" in opts["_set"]


def test_run_hostname_is_h_and_help_is_long_only():
    opts, _ = parse("run", "-h", "box", "busybox")
    assert opts["hostname"] == "box"
    with pytest.raises(HelpRequested):
        parse("run", "--help")
    with pytest.raises(HelpRequested):
        parse("ps", "-h")
    # after the image, --help belongs to the container
    assert parse("run", "busybox", "--help")[1] == ["busybox", "--help"]


def test_run_value_parsing_errors():
    e = usage_error("run", "-m", "1q", "busybox")
    assert e.message == 'invalid argument "1q" for "-m, --memory" flag: invalid suffix: \'q\''
    e = usage_error("run", "--cpus", "abc", "busybox")
    assert e.message == ('invalid argument "abc" for "--cpus" flag: failed to parse abc as a '
                         'rational number')
    e = usage_error("run", "--pids-limit", "x", "busybox")
    assert e.message == ('invalid argument "x" for "--pids-limit" flag: strconv.ParseInt: '
                         'parsing "x": invalid syntax')
    e = usage_error("run", "-a", "foo", "busybox")
    assert "valid streams are STDIN, STDOUT and STDERR" in e.message
    opts, _ = parse("run", "-m", "512m", "--memory-swap", "-1", "--cpus", "1.5", "-c", "512",
                    "--pids-limit", "50", "--shm-size", "64m", "busybox")
    assert opts["memory"] == 512 * 1024 * 1024
    assert opts["memory_swap"] == -1
    assert opts["cpus"] == 1500000000
    assert opts["cpu_shares"] == 512
    assert opts["pids_limit"] == 50
    assert opts["shm_size"] == 64 << 20


def test_every_command_parses_its_documented_flags():
    cases = {
        "logs": (["-f", "--tail", "5", "-t", "--since", "1m", "--until", "0s", "--details", "c"],
                 {"follow": True, "tail": "5", "timestamps": True}),
        "stop": (["-t", "3", "-s", "KILL", "a", "b"], {"timeout": 3, "signal": "KILL"}),
        "restart": (["--timeout=1", "a"], {"timeout": 1}),
        "kill": (["-s", "HUP", "a"], {"signal": "HUP"}),
        "rm": (["-fv", "a"], {"force": True, "volumes": True}),
        "wait": (["a", "b"], {}),
        "inspect": (["-f", "{{.Id}}", "--type", "image", "-s", "a"],
                    {"format": "{{.Id}}", "type": "image", "size": True}),
        "events": (["--since", "1h", "--until", "now", "-f", "type=container", "--format", "json"],
                   {"filter": ["type=container"], "format": "json"}),
        "version": (["-f", "{{.Server.Version}}"], {"format": "{{.Server.Version}}"}),
        "info": (["--format", "{{json .}}"], {"format": "{{json .}}"}),
        "import": (["-c", "CMD [\"sh\"]", "-m", "msg", "-", "img:1"],
                   {"change": ['CMD ["sh"]'], "message": "msg"}),
        "images": (["-aq", "--digests", "--no-trunc", "-f", "dangling=true", "busybox"],
                   {"all": True, "quiet": True, "digests": True, "no_trunc": True}),
        "rmi": (["-f", "--no-prune", "x"], {"force": True, "no_prune": True}),
        "pull": (["-q", "busybox"], {"quiet": True}),
        "exec": (["-d", "-e", "A=1", "-u", "0", "-w", "/", "--privileged", "c", "true"],
                 {"detach": True, "env": ["A=1"], "user": "0", "workdir": "/",
                  "privileged": True}),
        "start": (["-ai", "c"], {"attach": True, "interactive": True}),
        "attach": (["--no-stdin", "--sig-proxy=false", "c"], {"no_stdin": True, "sig_proxy": False}),
        "create": (["--name", "n", "-it", "busybox"], {"name": "n", "tty": True}),
        "pause": (["a"], {}), "unpause": (["a"], {}), "rename": (["a", "b"], {}),
        "update": (["-m", "64m", "--cpus", "1.5", "--pids-limit", "-1", "--restart", "no", "a"],
                   {"memory": 64 << 20, "cpus": 1_500_000_000, "pids_limit": -1, "restart": "no"}),
        "tag": (["a", "b"], {}), "push": (["-q", "a:b"], {"quiet": True}),
        "cp": (["-aLq", "c:/etc", "-"], {"archive": True, "follow_link": True, "quiet": True}),
        "diff": (["c"], {}), "export": (["-o", "c.tar", "c"], {"output": "c.tar"}),
        "login": (["-u", "me", "--password-stdin", "h:5000"], {"username": "me", "password_stdin": True}),
        "logout": (["h:5000"], {}), "top": (["a"], {}), "port": (["a", "80"], {}),
        "ps": (["-l", "-s"], {"latest": True, "size": True}),
        "save": (["-o", "x.tar", "a", "b"], {"output": "x.tar"}),
        "load": (["-q", "-i", "x.tar"], {"quiet": True, "input": "x.tar"}),
        "history": (["-q", "--no-trunc", "-H=false", "--format", "{{.ID}}", "a"],
                    {"quiet": True, "no_trunc": True, "human": False, "format": "{{.ID}}"}),
        "_image_prune": (["-af", "--filter", "until=1h"],
                         {"all": True, "force": True, "filter": ["until=1h"]}),
        "_volume_create": (["-d", "local", "--label", "a=b", "-o", "x=y", "v"],
                           {"driver": "local", "label": ["a=b"], "opt": ["x=y"]}),
        "_volume_ls": (["-q", "-f", "dangling=true", "--format", "{{.Name}}"],
                       {"quiet": True, "filter": ["dangling=true"], "format": "{{.Name}}"}),
        "_volume_inspect": (["-f", "{{.Name}}", "v"], {"format": "{{.Name}}"}),
        "_volume_rm": (["-f", "a", "b"], {"force": True}),
        "_volume_prune": (["-af", "--filter", "label=a"],
                          {"all": True, "force": True, "filter": ["label=a"]}),
        "run": (["--rm", "--runtime", "runc", "--network", "host", "--restart", "always",
                 "--entrypoint", "", "-w", "/w", "-u", "1:2", "busybox"],
                {"rm": True, "runtime": "runc", "network": "host", "restart": "always",
                 "entrypoint": "", "workdir": "/w", "user": "1:2"}),
    }
    cases["run"][0][-1:-1] = ["-v", "n:/d", "--tmpfs", "/t:size=1m", "--mount",
                              "type=bind,src=/h,dst=/m,ro"]
    cases["run"][1].update({"volume": ["n:/d"], "tmpfs": ["/t:size=1m"], "mount": [
        {"Type": "bind", "Source": "/h", "Target": "/m", "ReadOnly": True}]})
    for name, (module, _) in climain.COMMANDS.items():
        if module is None:
            continue
        assert name in cases, name
        argv, want = cases[name]
        opts, _ = parse(name, *argv)
        for k, v in want.items():
            assert opts[k] == v, (name, k, opts[k])


@pytest.mark.parametrize("cmd", ["ps", "logs"])
def test_help_options_block_matches_docker(cmd):
    """Same flags as docker 28 -> the same bytes as `docker <cmd> --help` (80 columns)."""
    mod = importlib.import_module(climain.COMMANDS[cmd][0])
    spec = mod.spec(cmd)
    ours = flag_usages(spec.flags, width=80)
    with open(os.path.join(HERE, "golden", "%s_help.txt" % cmd)) as f:
        docker = f.read()
    assert ours == docker.split("Options:\n", 1)[1]


def test_global_flags():
    opts, rest = climain.GLOBAL.parse(["-H", "unix:///x.sock", "-D", "ps", "-a"])
    assert opts["host"] == ["unix:///x.sock"] and opts["debug"]
    assert rest == ["ps", "-a"]
    opts, rest = climain.GLOBAL.parse(["--host=unix:///y", "run", "-H", "x"])
    assert opts["host"] == ["unix:///y"] and rest == ["run", "-H", "x"]
    e = pytest.raises(UsageError, climain.GLOBAL.parse, ["--foo"]).value
    assert e.render() == ("unknown flag: --foo\n\nUsage:  trioctr [OPTIONS] COMMAND [ARG...]\n\n"
                          "Run 'trioctr --help' for more information")


# -- -v/--volume and --mount, as docker's CLI parses them ---------------------------------


def test_volume_spec_parsing():
    from cli.volumes import parse_volume_spec, split_volumes, VolumeSpecError

    assert parse_volume_spec("/data") == {"Type": "volume", "Source": "", "Target": "/data",
                                          "ReadOnly": False}
    assert parse_volume_spec("name:/data:ro")["Type"] == "volume"
    assert parse_volume_spec("name:/data:ro")["ReadOnly"] is True
    assert parse_volume_spec("/h:/c")["Type"] == "bind"
    assert parse_volume_spec("./rel:/c")["Type"] == "bind"
    assert parse_volume_spec("~/x:/c")["Type"] == "bind"
    assert parse_volume_spec("rel/x:/c")["Type"] == "volume"
    for bad, msg in (("a:b:c:d", "invalid spec: a:b:c:d: too many colons"),
                     (":/x", "invalid spec: :/x: empty section between colons"),
                     ("", "invalid empty volume spec")):
        with pytest.raises(VolumeSpecError) as ei:
            parse_volume_spec(bad)
        assert str(ei.value) == msg
    binds, vols = split_volumes(["/data", "n:/n", "./h:/h:ro", "/abs:/a", "rel/p:/r"], cwd="/cwd")
    assert vols == {"/data": {}}
    assert binds == ["n:/n", "/cwd/h:/h:ro", "/abs:/a", "rel/p:/r"]


def test_mount_flag_parsing():
    from cli.volumes import parse_mount

    assert parse_mount("type=volume,source=v,target=/d,volume-nocopy,volume-label=a=b") == {
        "Type": "volume", "Source": "v", "Target": "/d",
        "VolumeOptions": {"Labels": {"a": "b"}, "DriverConfig": {}, "NoCopy": True}}
    assert parse_mount("target=/anon") == {"Type": "volume", "Target": "/anon"}
    assert parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1777") == {
        "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}}
    assert parse_mount("type=bind,src=/h,dst=/m,bind-propagation=rslave,readonly=false") == {
        "Type": "bind", "Source": "/h", "Target": "/m", "ReadOnly": False,
        "BindOptions": {"Propagation": "rslave"}}
    for bad, msg in (("type=bind,src=/h", "target is required"),
                     ("type=bind,dst=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'bind'"),
                     ("type=tmpfs,dst=/x,bind-propagation=shared",
                      "cannot mix 'bind-*' options with mount type 'tmpfs'"),
                     ("dst=/x,foo", "invalid field 'foo' must be a key=value pair"),
                     ("dst=/x,foo=1", "unexpected key 'foo' in 'foo=1'"),
                     ("dst=/x,ro=maybe", "invalid value for ro: maybe"),
                     ("type=tmpfs,dst=/x,tmpfs-mode=9", "invalid value for tmpfs-mode: 9")):
        with pytest.raises(ValueError) as ei:
            parse_mount(bad)
        assert str(ei.value) == msg, bad
    e = pytest.raises(UsageError, parse, "run", "--mount", "type=bind", "busybox").value
    assert e.render().startswith('invalid argument "type=bind" for "--mount" flag: target is required')
