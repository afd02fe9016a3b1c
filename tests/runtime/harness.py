"""A tiny child subreaper standing in for the shim in runtime tests.

    python3 harness.py EVENTS -- COMMAND...

Becomes a child subreaper, runs COMMAND (normally `actors.runtime create`)
with the harness's own stdio (so the container init inherits it), then
reaps every child that exits, including the container init reparented to
it, appending one JSON line per exit to EVENTS:
{"pid": P, "code": exit code or 128+signal, "first": true for COMMAND}.
Exits when it has no children left.
"""

import ctypes
import json
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> None:
    events, sep, *cmd = sys.argv[1:]
    assert sep == "--" and cmd
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    first = os.fork()
    if first == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            code = 128 - code
        with open(events, "a") as f:
            f.write(json.dumps({"pid": pid, "code": code, "first": pid == first}) + "\n")


if __name__ == "__main__":
    main()
