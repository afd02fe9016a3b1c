"""`trioctr`: entry point, global flags, command dispatch and error reporting.

Commands live in a few modules imported only when their command runs:
cli.run (run, create, start, exec, attach), cli.containers (ps, logs, stop,
...), cli.images (images, pull, import, ...), cli.system (version, info,
events).
"""

import sys

from cli.flags import PROG, Flag, Spec, UsageError, HelpRequested

# name -> (module, short description)
COMMANDS = {
    "attach": ("cli.run", "Attach local standard input, output, and error streams to a running container"),
    "cp": ("cli.files", "Copy files/folders between a container and the local filesystem"),
    "create": ("cli.run", "Create a new container"),
    "diff": ("cli.files", "Inspect changes to files or directories on a container's filesystem"),
    "events": ("cli.system", "Get real time events from the server"),
    "exec": ("cli.run", "Execute a command in a running container"),
    "export": ("cli.files", "Export a container's filesystem as a tar archive"),
    "history": ("cli.images", "Show the history of an image"),
    "images": ("cli.images", "List images"),
    "import": ("cli.images", "Import the contents from a tarball to create a filesystem image"),
    "info": ("cli.system", "Display system-wide information"),
    "inspect": ("cli.containers", "Return low-level information on trioctr objects"),
    "kill": ("cli.containers", "Kill one or more running containers"),
    "load": ("cli.images", "Load an image from a tar archive or STDIN"),
    "login": ("cli.auth", "Authenticate to a registry"),
    "logout": ("cli.auth", "Log out from a registry"),
    "logs": ("cli.containers", "Fetch the logs of a container"),
    "pause": ("cli.containers", "Pause all processes within one or more containers"),
    "port": ("cli.containers", "List port mappings or a specific mapping for the container"),
    "ps": ("cli.containers", "List containers"),
    "pull": ("cli.images", "Download an image from a registry"),
    "push": ("cli.images", "Upload an image to a registry"),
    "rename": ("cli.containers", "Rename a container"),
    "restart": ("cli.containers", "Restart one or more containers"),
    "rm": ("cli.containers", "Remove one or more containers"),
    "rmi": ("cli.images", "Remove one or more images"),
    "run": ("cli.run", "Create and run a new container from an image"),
    "save": ("cli.images", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "start": ("cli.run", "Start one or more stopped containers"),
    "stop": ("cli.containers", "Stop one or more running containers"),
    "tag": ("cli.images", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "top": ("cli.containers", "Display the running processes of a container"),
    "unpause": ("cli.containers", "Unpause all processes within one or more containers"),
    "update": ("cli.containers", "Update configuration of one or more containers"),
    "version": ("cli.system", "Show the trioctr version information"),
    "wait": ("cli.containers", "Block until one or more containers stop, then print their exit codes"),
    # only as management subcommands (names starting with "_" are not listed on top)
    "_image_prune": ("cli.images", "Remove unused images"),
    "_volume_create": ("cli.volumes", "Create a volume"),
    "_volume_inspect": ("cli.volumes", "Display detailed information on one or more volumes"),
    "_volume_ls": ("cli.volumes", "List volumes"),
    "_volume_prune": ("cli.volumes", "Remove unused local volumes"),
    "_volume_rm": ("cli.volumes", "Remove one or more volumes"),
}

COMMON = ("run", "exec", "ps", "pull", "images", "login", "logout", "version", "info")

# docker's management-command spellings: `trioctr container ls` == `trioctr ps`
MANAGEMENT = {
    "container": ("Manage containers", {
        "attach": "attach", "cp": "cp", "create": "create", "diff": "diff", "exec": "exec",
        "export": "export", "inspect": "inspect",
        "kill": "kill", "logs": "logs", "ls": "ps", "list": "ps", "ps": "ps", "pause": "pause",
        "port": "port", "rename": "rename", "restart": "restart", "rm": "rm", "remove": "rm",
        "run": "run", "start": "start", "stop": "stop", "top": "top", "unpause": "unpause",
        "update": "update", "wait": "wait"}),
    "image": ("Manage images", {
        "history": "history", "import": "import", "inspect": "inspect", "load": "load",
        "ls": "images", "list": "images", "prune": "_image_prune", "pull": "pull", "push": "push",
        "rm": "rmi", "remove": "rmi", "save": "save", "tag": "tag"}),
    "system": ("Manage trioctr", {"events": "events", "info": "info"}),
    "volume": ("Manage volumes", {
        "create": "_volume_create", "inspect": "_volume_inspect", "ls": "_volume_ls",
        "list": "_volume_ls", "prune": "_volume_prune", "rm": "_volume_rm",
        "remove": "_volume_rm"}),
}

GLOBAL = Spec("", "[OPTIONS] COMMAND [ARG...]", "A self-sufficient runtime for containers", [
    Flag("debug", "D", "bool", "Enable debug mode"),
    Flag("host", "H", "list", "Daemon socket to connect to (default $TRIOCTR_HOST, else "
         "$DOCKER_HOST if unix://, else unix:///run/trioctr/trioctr.sock)"),
    Flag("log-level", "l", "string",
         'Set the logging level ("debug", "info", "warn", "error", "fatal")', "info"),
    Flag("version", "v", "bool", "Print version information and quit"),
], interspersed=False)


class CLIError(Exception):
    """A message for stderr and an exit status."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.message = message
        self.code = code


class Exit(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


class Ctx:
    """What a command gets: the chosen host, a lazily made API client, output helpers."""

    def __init__(self, host, debug=False):
        self.host = host
        self.debug = debug
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from cli.client import Client, HostError
            try:
                self._client = Client(self.host)
            except HostError as e:
                raise CLIError(str(e)) from None
        return self._client

    @staticmethod
    def out(text):
        sys.stdout.write(text)

    @staticmethod
    def err(text):
        sys.stdout.flush()
        sys.stderr.write(text)
        sys.stderr.flush()


def top_help():
    from cli.flags import flag_usages
    out = ["Usage:  %s [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers\n\n"
           "Common Commands:\n" % PROG]
    for name in COMMON:
        out.append("  %-11s %s\n" % (name, COMMANDS[name][1]))
    out.append("\nManagement Commands:\n")
    for name in sorted(MANAGEMENT):
        out.append("  %-11s %s\n" % (name, MANAGEMENT[name][0]))
    out.append("\nCommands:\n")
    for name in sorted(COMMANDS):
        if name not in COMMON and not name.startswith("_"):
            out.append("  %-11s %s\n" % (name, COMMANDS[name][1]))
    out.append("\nGlobal Options:\n")
    out.append(flag_usages(GLOBAL.flags))
    out.append("\nRun '%s COMMAND --help' for more information on a command.\n" % PROG)
    return "".join(out)


def management_help(group):
    desc, subs = MANAGEMENT[group]
    out = ["Usage:  %s %s COMMAND\n\n%s\n\nCommands:\n" % (PROG, group, desc)]
    for sub in sorted(subs):
        out.append("  %-11s %s\n" % (sub, COMMANDS[subs[sub]][1]))
    out.append("\nRun '%s %s COMMAND --help' for more information on a command.\n" % (PROG, group))
    return "".join(out)


def _parse_global(argv):
    try:
        opts, rest = GLOBAL.parse(argv)
    except HelpRequested:
        return None, None
    return opts, rest


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1


def _silence_stdout():
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _main(argv):
    try:
        gopts, rest = _parse_global(argv)
    except UsageError as e:
        sys.stderr.write(e.render() + "\n")
        return e.exit_code
    if gopts is None:
        sys.stdout.write(top_help())
        return 0
    if len(gopts["host"]) > 1:
        sys.stderr.write("Specify only one -H\n")
        return 1
    if gopts["version"]:
        from cli import __version__
        sys.stdout.write("%s version %s\n" % (PROG, __version__))
        return 0
    if not rest:
        sys.stdout.write(top_help())
        return 0
    name, args = rest[0], rest[1:]
    display = name
    if name == "help":
        if not args:
            sys.stdout.write(top_help())
            return 0
        name, args = args[0], ["--help"]
        display = name
    if name in MANAGEMENT:
        subs = MANAGEMENT[name][1]
        if not args or args[0] in ("--help", "-h", "help"):
            sys.stdout.write(management_help(name))
            return 0
        sub = args[0]
        if sub not in subs:
            sys.stderr.write("%s: unknown command: %s %s %s\n\nRun '%s %s --help' for more "
                             "information\n" % (PROG, PROG, name, sub, PROG, name))
            return 1
        display = "%s %s" % (name, sub)
        name, args = subs[sub], args[1:]
    entry = COMMANDS.get(name)
    if entry is None:
        sys.stderr.write("%s: unknown command: %s %s\n\nRun '%s --help' for more information\n"
                         % (PROG, PROG, name, PROG))
        return 1
    if entry[0] is None:
        sys.stderr.write("%s: '%s' is not implemented yet\n" % (PROG, name))
        return 1
    import importlib
    mod = importlib.import_module(entry[0])
    spec = mod.spec(name)
    spec.name = display
    try:
        opts, args = spec.parse(args)
    except HelpRequested:
        sys.stdout.write(spec.help())
        return 0
    except UsageError as e:
        sys.stderr.write(e.render() + "\n")
        return e.exit_code
    from cli.client import select_host
    ctx = Ctx(select_host(gopts["host"]), gopts["debug"])
    return run_command(ctx, mod, name, spec, opts, args)


def run_command(ctx, mod, name, spec, opts, args):
    from cli.client import DaemonUnavailable, APIError, ConnectionLost
    try:
        rc = getattr(mod, "cmd_" + name)(ctx, opts, args)
    except Exit as e:
        rc = e.code
    except CLIError as e:
        if e.message:
            ctx.err(e.message.rstrip("\n") + "\n")
        rc = e.code
    except (DaemonUnavailable, APIError, ConnectionLost) as e:
        ctx.err("%s\n" % e)
        rc = 1
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as e:  # a bug: one line, the traceback only with --debug
        if ctx.debug:
            raise
        ctx.err("%s: unexpected error: %s: %s (run with --debug for a traceback)\n"
                % (PROG, type(e).__name__, e))
        rc = 1
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
