"""The shim forks itself to run our runtime (create, exec) while worker
threads run the runtime's quick commands in-process: the forked child must
not inherit a lock one of those threads held (an import in progress, a
stdio buffer), or it hangs and the shim waits on it forever (shielded)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.helpers.engine import ROOT

SCRIPT = textwrap.dedent(r"""
    import importlib.abc, json, os, subprocess, sys, tempfile, threading, time, types
    from actors import shim as shimmod
    shimmod.preload_runtime()  # what the zygote (or `shim start`) does before serving
    from actors import runtime
    root = tempfile.mkdtemp()
    sl = subprocess.Popen(["sleep", "60"])
    cid = "c1"
    os.makedirs(os.path.join(root, cid))
    state = {"pid": sl.pid, "pid_start": runtime.proc_start_time(sl.pid)[1], "bundle": root,
             "cgroup": {"version": 2, "mount": "/nonexistent", "path": "/x"}}
    with open(os.path.join(root, cid, runtime.STATE), "w") as f:
        json.dump(state, f)

    class Slow(importlib.abc.MetaPathFinder):
        # an import in a worker thread that takes a while (a cold cache, a
        # busy disk): it holds the module's import lock meanwhile
        def find_spec(self, name, path, target=None):
            if threading.current_thread() is not threading.main_thread() and name.startswith(("linux", "oci")):
                time.sleep(1.5)
            return None

    sys.meta_path.insert(0, Slow())
    argv = ["--root", root, "--log", os.path.join(root, "log"), "--log-format", "json",
            "kill", "--all", cid, "CONT"]
    t = threading.Thread(target=runtime.main, args=(argv,))
    t.start()
    time.sleep(0.3)
    pid = shimmod.ShimService._fork_runtime(types.SimpleNamespace(bundle=root), argv, (-1, -1, -1), ())
    deadline = time.monotonic() + 8
    status = None
    while time.monotonic() < deadline:
        got, st = os.waitpid(pid, os.WNOHANG)
        if got:
            status = st
            break
        time.sleep(0.05)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    t.join()
    sl.kill()
    sl.wait()
    print("hung" if status is None else f"exit {os.waitstatus_to_exitcode(status)}")
""")


def test_forked_runtime_does_not_inherit_an_import_lock():
    res = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, timeout=60)
    assert res.stdout.decode().strip() == "exit 0", res


def test_preload_covers_the_in_process_commands():
    """Every module the in-process commands import lazily is imported by
    preload_runtime: a worker thread never imports while the shim forks."""
    script = textwrap.dedent(r"""
        import sys
        from actors import shim as shimmod
        shimmod.preload_runtime()
        before = set(sys.modules)
        import ast, inspect
        from actors import runtime
        src = inspect.getsource(runtime)
        names = set()
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ImportFrom) and node.module and node.col_offset > 0:
                if node.module.startswith(("linux", "oci")):
                    names.add(node.module)
        print(sorted(n for n in names if n not in before))
    """)
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=60)
    assert res.stdout.decode().strip() == "[]", res
