"""login / logout, and the credentials pull and push send.

Credentials live in docker's config.json format ({"auths": {SERVER: {"auth":
base64("user:password")}}}), mode 0600, at $TRIOCTR_CONFIG/config.json or
~/.trioctr/config.json.
"""

import base64
import json
import os
import sys

from cli.flags import Flag, Spec
from cli.main import CLIError

DEFAULT_SERVER = "https://index.docker.io/v1/"

SPECS = {
    "login": lambda: Spec("login", "login [OPTIONS] [SERVER]",
                          "Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.", [
                              Flag("password", "p", "string", "Password"),
                              Flag("password-stdin", None, "bool", "Take the password from stdin"),
                              Flag("username", "u", "string", "Username"),
                          ], args=("range", 0, 1)),
    "logout": lambda: Spec("logout", "logout [SERVER]",
                           "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.",
                           args=("range", 0, 1)),
}


def spec(name):
    return SPECS[name]()


def config_path():
    base = os.environ.get("TRIOCTR_CONFIG") or os.path.join(os.path.expanduser("~"), ".trioctr")
    return os.path.join(base, "config.json")


def load_config():
    try:
        with open(config_path()) as f:
            cfg = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise CLIError("error reading %s: %s" % (config_path(), e)) from None
    return cfg if isinstance(cfg, dict) else {}


def save_config(cfg):
    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent="\t")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)


def server_key(server):
    """docker's key for a registry: the hub's legacy URL, else the bare host[:port]."""
    if not server or server in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return DEFAULT_SERVER
    for prefix in ("https://", "http://"):
        if server.startswith(prefix):
            server = server[len(prefix):]
    return server.rstrip("/").split("/", 1)[0]


def registry_header(image):
    """X-Registry-Auth for an image reference: stored credentials of its
    registry, or the empty object docker sends when there are none."""
    from cli import reference

    name = reference.split(image)[0]
    domain, _ = reference._split_domain(name)
    entry = (load_config().get("auths") or {}).get(server_key(domain))
    if not entry or not entry.get("auth"):
        return "e30="
    try:
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return "e30="
    payload = json.dumps({"username": user, "password": password, "serveraddress": domain})
    return base64.urlsafe_b64encode(payload.encode()).decode()


def cmd_login(ctx, opts, args):
    from cli.client import APIError
    server = args[0] if args else DEFAULT_SERVER
    user = opts["username"] or ""
    password = opts["password"] or ""
    if opts["password_stdin"]:
        if opts["password"]:
            raise CLIError("--password and --password-stdin are mutually exclusive")
        if not user:
            raise CLIError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if not user or not password:
        raise CLIError("Error: Cannot perform an interactive login from a non TTY device"
                       if not sys.stdin.isatty() else "Username and password are required")
    try:
        reply = ctx.client.json("POST", "/auth", None,
                                {"username": user, "password": password, "serveraddress": server})
    except APIError as e:
        raise CLIError(str(e)) from None
    cfg = load_config()
    auths = cfg.setdefault("auths", {})
    auths[server_key(server)] = {"auth": base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}
    save_config(cfg)
    ctx.out("%s\n" % ((reply or {}).get("Status") or "Login Succeeded"))
    return 0


def cmd_logout(ctx, opts, args):
    server = args[0] if args else DEFAULT_SERVER
    key = server_key(server)
    cfg = load_config()
    auths = cfg.get("auths") or {}
    if key not in auths:
        ctx.out("Not logged in to %s\n" % server)
        return 0
    ctx.out("Removing login credentials for %s\n" % server)
    del auths[key]
    save_config(cfg)
    return 0
