"""trioctrd: the daemon (dockerd's role).

Owns the API, the images, the container records, the event bus and its
journal.  It spawns the supervisor over a socketpair and restarts it with
backoff whenever the link breaks, saying so in a daemon event.  Containers
outlive the daemon (live restore is always on): a restarted daemon finds
them through a new supervisor that re-adopts their shims.

    trioctrd [--root DIR] [--exec-root DIR] [-H unix:///path.sock]
             [--cgroup-parent NAME] [--add-runtime NAME=PATH] [--default-runtime NAME]
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import attrs
import trio

from messages import supervisor as sup
from messages.errors import ErrorCode, RemoteError
from messages.link import Link

from . import containers as C
from .events import EventBus
from .supervisor import child_env

log = logging.getLogger("trioctr.daemon")

VERSION = "0.1.0"
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
SUPERVISOR_WAIT = 15.0  # how long a request waits for a (re)starting supervisor
STABLE_AFTER = 10.0  # a supervisor up this long resets the restart backoff


@attrs.define
class Config:
    root: str = "/var/lib/trioctr"
    exec_root: str = "/run/trioctr"
    host: str = ""  # unix socket path; default <exec-root>/trioctr.sock
    cgroup_parent: str = "trioctr"
    runtimes: dict[str, str] = attrs.field(factory=dict)
    default_runtime: str = "trioctr"
    socket_mode: int = 0o660
    # registries reached over plain HTTP besides localhost and 127.0.0.0/8 (host[:port] or CIDR)
    insecure_registries: list[str] = attrs.field(factory=list)
    registry_mirrors: list[str] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.root = os.path.abspath(self.root)
        self.exec_root = os.path.abspath(self.exec_root)
        if not self.host:
            self.host = os.path.join(self.exec_root, "trioctr.sock")
        for name in ("runc", "crun"):
            if name not in self.runtimes:
                path = shutil.which(name)
                if path:
                    self.runtimes[name] = path


class Daemon:
    def __init__(self, config: Config):
        from oci.store import ImageStore, recover_store

        self.config = config
        self.id = ""
        self.containers_dir = os.path.join(config.root, "containers")
        # removed containers' directories, moved here at once and deleted in
        # the background (what a daemon killed meanwhile left goes at start-up)
        self.trash_dir = os.path.join(config.root, "trash")
        for d in (config.root, self.containers_dir, config.exec_root, self.trash_dir):
            os.makedirs(d, mode=0o711, exist_ok=True)
        self.id = self._daemon_id()
        self.images = ImageStore(os.path.join(config.root, "image"))
        # a daemon killed mid-pull leaves temp files and half-unpacked layers:
        # removed before anything is served
        recover_store(self.images)
        self.events = EventBus(os.path.join(config.root, "events.jsonl"))
        self.records: dict[str, dict] = {r["Id"]: r for r in C.load_records(self.containers_dir)}
        self.names: dict[str, str] = {r["Name"]: r["Id"] for r in self.records.values()}
        self.locks: dict[str, trio.Lock] = {}
        self.changed: dict[str, trio.Event] = {}
        self.exit_seq: dict[str, int] = {}  # exits seen per container (wait next-exit)
        self.removed_exit: dict[str, int] = {}  # exit code of removed containers (wait removed)
        # exec instances by id (api_exec.ExecInstance), in memory only as in dockerd
        self.execs: dict[str, object] = {}
        self.sup_link: Link | None = None
        self.sup_ready = trio.Event()
        self.sup_restarts = 0
        self.started_at = time.time()
        self.nursery: trio.Nursery | None = None
        # record writes: save() now, save_soon() by a background task; the
        # generation of each record's last write keeps an older state from
        # being written over a newer one
        self._disk_lock = threading.Lock()
        self._save_gen: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._saving = False

    def _daemon_id(self) -> str:
        path = os.path.join(self.config.root, "engine-id")
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            ident = os.urandom(16).hex()
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(ident)
            os.rename(tmp, path)
            return ident

    # -- running ----------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from . import api
        from .http import serve_unix

        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(trio.to_thread.run_sync, self._empty_trash)
            await nursery.start(self._keep_supervisor)
            router = api.make_router(self)
            await nursery.start(lambda task_status: serve_unix(
                self.config.host, router, mode=self.config.socket_mode, task_status=task_status))
            log.info("API listening on unix://%s", self.config.host)
            task_status.started()

    def _empty_trash(self) -> None:
        """What a daemon killed while removing containers left in the trash."""
        for name in os.listdir(self.trash_dir):
            shutil.rmtree(os.path.join(self.trash_dir, name), ignore_errors=True)

    def close(self) -> None:
        self.flush_saves()
        self.events.close()

    # -- the supervisor link -------------------------------------------------------
    async def _keep_supervisor(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        backoff = 0.1
        first = True
        log_path = os.path.join(self.config.exec_root, "supervisor.log")
        while True:
            parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            argv = [sys.executable, "-m", "actors.supervisor", "--fd", str(child.fileno()),
                    "--exec-root", self.config.exec_root]
            for name, path in sorted(self.config.runtimes.items()):
                argv += ["--runtime", f"{name}={path}"]
            with open(log_path, "ab") as logf:
                proc = await trio.lowlevel.open_process(
                    argv, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
                    stdout=logf, stderr=logf, env=child_env())
            child.close()
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(parent))
            link = Link(stream, role="daemon", name="supervisor")
            up_since = time.monotonic()
            why = "unknown"
            try:
                await link.handshake(timeout=60)
                self.sup_link = link
                self.events.publish("daemon", "supervisor-start" if first else "supervisor-restart",
                                    self.id, {"pid": str(proc.pid), "name": socket.gethostname(),
                                              "restarts": str(self.sup_restarts)})
                async with trio.open_nursery() as n:
                    async def serve_then_cancel():
                        nonlocal why
                        why = await link.serve(self)
                        n.cancel_scope.cancel()

                    n.start_soon(serve_then_cancel)
                    await self._reconcile(link)
                    self.sup_ready.set()
                    if first:
                        task_status.started()
                        first = False
            except (RemoteError, trio.TooSlowError, OSError) as exc:
                why = f"handshake failed: {exc}"
                log.error("supervisor %s", why)
                if first:
                    # a supervisor that cannot start at all is fatal at start-up
                    pass
            finally:
                self.sup_link = None
                self.sup_ready = trio.Event()
                with trio.CancelScope(shield=True):
                    await link.aclose()
                    if proc.returncode is None:
                        try:
                            proc.kill()
                        except ProcessLookupError:
                            pass
                    await proc.wait()
            code = proc.returncode
            self.sup_restarts += 1
            log.warning("supervisor (pid %d) is gone: %s, exit %s; restarting in %.1fs",
                        proc.pid, why, code, backoff)
            self.events.publish("daemon", "supervisor-exit", self.id,
                                {"pid": str(proc.pid), "exitCode": str(code), "reason": why,
                                 "name": socket.gethostname()})
            if time.monotonic() - up_since > STABLE_AFTER:
                backoff = 0.1
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            if first and self.sup_restarts > 5:
                raise RuntimeError(f"the supervisor does not start: {why}")

    async def sup_request(self, msg, timeout: float = 60.0):
        """A request to the supervisor, waiting (bounded) for one that is up:
        during a restart the old link is closed and the new one not ready yet."""
        deadline = trio.current_time() + SUPERVISOR_WAIT
        while True:
            ready = self.sup_ready
            with trio.move_on_at(deadline):
                await ready.wait()
            link = self.sup_link
            if link is not None and ready.is_set() and not link.closed:
                return await link.request(msg, timeout=timeout)
            if trio.current_time() >= deadline:
                raise RemoteError(ErrorCode.UNAVAILABLE, "the supervisor is not running; try again")
            await trio.sleep(0.05)

    async def _reconcile(self, link: Link) -> None:
        """After a (re)start of the supervisor: make the records agree with the
        tasks that really exist."""
        reply = await link.request(sup.ListTasks(), timeout=60)
        tasks = {t.container_id: t for t in reply.tasks}
        for cid, rec in list(self.records.items()):
            task = tasks.get(cid)
            if (not C.is_running(rec) and rec.get("HostConfig", {}).get("AutoRemove")
                    and rec["State"].get("StartedAt", C.ZERO_TIME) != C.ZERO_TIME
                    and (task is None or task.status == "stopped")):
                # a --rm container that ran and stopped, and was not removed
                # (the daemon went away first): as dockerd, remove it now
                self.nursery.start_soon(self._remove_auto, rec)
            elif not C.is_running(rec) and task is not None and task.status in ("running", "paused"):
                # it was started, but the record did not say so yet (the
                # daemon went away before it was written): it runs
                C.mark_started(rec, task.pid, time.time_ns())
                if task.status == "paused":
                    rec["State"].update(Paused=True, Status="paused")
                self._save(rec)
            elif C.is_running(rec):
                if task is None:
                    self.nursery.start_soon(functools.partial(
                        self._on_exit, cid, 255, time.time_ns(),
                        error="container lost while the engine was down", ack=False))
                elif task.status == "stopped":
                    self.nursery.start_soon(functools.partial(
                        self._on_exit, cid, task.exit_status, task.exited_at, pid=task.pid))
                else:
                    st = rec["State"]
                    changed = False
                    if task.pid and task.pid != st["Pid"]:
                        st["Pid"] = task.pid
                        changed = True
                    # the shim knows whether it is frozen (a pause or unpause may
                    # have happened while the record was being written)
                    paused = task.status == "paused"
                    if task.status in ("running", "paused") and bool(st.get("Paused")) != paused:
                        st.update(Paused=paused, Status="paused" if paused else "running")
                        changed = True
                    if changed:
                        self._save(rec)
        for cid, task in tasks.items():
            for eid in task.exec_ids:
                if eid not in self.execs:
                    # an exec of an earlier daemon: nobody will read it again
                    self.nursery.start_soon(self._orphan_exec, cid, eid)
            if cid not in self.records:
                # a task with no record (its container was removed while we were
                # down, or it never got one): stop it and let it go
                self.nursery.start_soon(self._reap_orphan_task, cid, task.status)

    async def _remove_auto(self, rec: dict) -> None:
        from . import api

        try:
            await api.remove_container(self, rec, force=True, auto=True)
        except (RemoteError, api.HTTPError) as exc:
            log.warning("auto-remove of %s failed: %s", rec["Id"][:12], exc)

    async def _orphan_exec(self, cid: str, eid: str) -> None:
        try:
            await self.sup_request(sup.DeleteExec(container_id=cid, exec_id=eid, orphan=True), timeout=10)
        except RemoteError as exc:
            log.warning("could not let go of exec %s of %s: %s", eid[:12], cid[:12], exc)

    async def _reap_orphan_task(self, cid: str, status: str) -> None:
        try:
            if status in ("created", "running", "paused"):
                await self.sup_request(sup.KillTask(container_id=cid, signal=signal.SIGKILL, all=True))
                await trio.sleep(0.2)
            await self.sup_request(sup.DeleteTask(container_id=cid))
        except RemoteError as exc:
            log.warning("could not remove orphan task %s: %s", cid[:12], exc)

    # Link handler: the supervisor sends task events; it makes no requests.
    async def handle_request(self, link: Link, msg):
        raise RemoteError(ErrorCode.UNIMPLEMENTED, "the daemon takes no requests from the supervisor")

    async def handle_event(self, link: Link, msg) -> None:
        assert self.nursery is not None
        if isinstance(msg, sup.TaskExit):
            self.nursery.start_soon(functools.partial(
                self._on_exit, msg.container_id, msg.exit_status, msg.exited_at, pid=msg.pid))
        elif isinstance(msg, sup.TaskAdopted):
            self.events.publish("daemon", "adopt", self.id, {
                "container": msg.task.container_id, "status": msg.task.status,
                "pid": str(msg.task.pid), "name": socket.gethostname()})
        elif isinstance(msg, sup.ShimLost):
            self.events.publish("daemon", "shim-lost", self.id, {
                "container": msg.container_id, "reason": msg.reason, "name": socket.gethostname()})

    # -- records -----------------------------------------------------------------------
    def lock(self, cid: str) -> trio.Lock:
        return self.locks.setdefault(cid, trio.Lock())

    def notify(self, cid: str) -> None:
        ev = self.changed.pop(cid, None)
        if ev:
            ev.set()

    async def wait_change(self, cid: str, timeout: float | None = None) -> None:
        ev = self.changed.setdefault(cid, trio.Event())
        if timeout is None:
            await ev.wait()
        else:
            with trio.move_on_after(timeout):
                await ev.wait()

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.containers_dir, cid)

    async def discard_dir(self, path: str) -> None:
        """Remove a directory tree without waiting for it: moved to the trash
        (one rename), then deleted by a background task."""
        gone = os.path.join(self.trash_dir, f"{os.path.basename(path)}-{os.urandom(4).hex()}")
        try:
            os.rename(path, gone)
        except FileNotFoundError:
            return
        except OSError:  # (not on the same filesystem, ...): the slow way
            await trio.to_thread.run_sync(shutil.rmtree, path, True)
            return
        assert self.nursery is not None
        self.nursery.start_soon(trio.to_thread.run_sync, shutil.rmtree, gone, True)

    def _record_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), "config.v2.json")

    def _save(self, rec: dict) -> None:
        cid = rec["Id"]
        with self._disk_lock:
            self._save_gen[cid] = self._save_gen.get(cid, 0) + 1
            C.atomic_write_json(self._record_path(cid), rec)

    def save(self, rec: dict) -> None:
        self._save(rec)
        self.notify(rec["Id"])

    def save_soon(self, rec: dict, *, notify: bool = True) -> None:
        """Persist a record in the background, off the request's path: for what
        a restarted daemon learns again (a start, from the running task; the
        exit of an auto-removed container, removed anyway: see _reconcile).
        A later ``save`` wins over it."""
        cid = rec["Id"]
        if notify:
            self.notify(cid)
        self._dirty.add(cid)
        if not self._saving and self.nursery is not None:
            self._saving = True
            self.nursery.start_soon(self._save_dirty)

    async def _save_dirty(self) -> None:
        try:
            while self._dirty:
                cid = self._dirty.pop()
                rec = self.records.get(cid)
                if rec is not None:  # (else removed meanwhile)
                    await self.save_in_thread(rec)
        finally:
            self._saving = False

    async def save_in_thread(self, rec: dict) -> None:
        """Persist a record as it is now, the write and its sync in a worker
        thread (the loop goes on meanwhile); errors are logged."""
        cid = rec["Id"]
        data = json.dumps(rec)  # now: it may change while written
        gen = self._save_gen.get(cid, 0)
        try:
            await trio.to_thread.run_sync(self._write_record, cid, gen, data)
        except OSError as exc:
            if cid in self.records:
                log.warning("could not save the record of %s: %s", cid[:12], exc)

    def flush_saves(self) -> None:
        """At shutdown: what save_soon has not written yet, now."""
        dirty, self._dirty = self._dirty, set()
        for cid in dirty:
            rec = self.records.get(cid)
            if rec is not None:
                try:
                    self._save(rec)
                except OSError as exc:
                    log.warning("could not save the record of %s: %s", cid[:12], exc)

    def _write_record(self, cid: str, gen: int, data: str) -> None:
        with self._disk_lock:
            if self._save_gen.get(cid, 0) != gen:
                return  # a newer state was written meanwhile
            self._save_gen[cid] = gen + 1
            C.atomic_write_text(self._record_path(cid), data)

    def find(self, ref: str) -> dict:
        """A container by full id, name, or unique id prefix (Docker's rules)."""
        if not ref:
            raise RemoteError(ErrorCode.NOT_FOUND, "No such container: ")
        rec = self.records.get(ref)
        if rec:
            return rec
        cid = self.names.get(ref if ref.startswith("/") else "/" + ref)
        if cid and cid in self.records:
            return self.records[cid]
        if all(c in "0123456789abcdef" for c in ref):
            found = [r for i, r in self.records.items() if i.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise RemoteError(ErrorCode.INVALID_ARGUMENT,
                                  f"multiple IDs found with provided prefix: {ref}")
        raise RemoteError(ErrorCode.NOT_FOUND, f"No such container: {ref}")

    def event_attrs(self, rec: dict, **extra: str) -> dict[str, str]:
        out = dict(rec.get("Config", {}).get("Labels") or {})
        out["image"] = rec.get("Config", {}).get("Image", "")
        out["name"] = rec["Name"].lstrip("/")
        out.update(extra)
        return out

    # -- exits -------------------------------------------------------------------------
    async def _on_exit(self, cid: str, exit_status: int, exited_at: int, *, pid: int | None = None,
                       error: str = "", ack: bool = True) -> None:
        """A task exited.  ``pid`` is its init's (0: it never had one), or None
        when the exit is of whatever task the container has now."""
        rec = self.records.get(cid)
        if rec is not None:
            async with self.lock(cid):
                running_pid = rec["State"].get("Pid") or 0
                if C.is_running(rec) and pid is not None and pid != running_pid:
                    # the exit of an earlier task of this container, e.g. a shim
                    # lost in a create that was then made again: the container
                    # runs on, and the task to acknowledge is not this one
                    log.info("exit %d of %s (pid %d) is not of its running task (pid %d): ignored",
                             exit_status, cid[:12], pid, running_pid)
                    return
                if C.is_running(rec):
                    C.mark_exited(rec, exit_status, exited_at, error=error)
                    self.exit_seq[cid] = self.exit_seq.get(cid, 0) + 1
                    self.notify(cid)  # (attached clients end their streams now)
                    if rec.get("HostConfig", {}).get("AutoRemove"):
                        # it is removed next: if we die before, the next
                        # daemon removes it (_reconcile)
                        self.save_soon(rec, notify=False)
                    else:
                        # on disk before the task (which keeps the exit) is deleted
                        await self.save_in_thread(rec)
                    self.events.publish("container", "die", cid,
                                        self.event_attrs(rec, exitCode=str(exit_status)))
        autoremove = rec is not None and bool(rec.get("HostConfig", {}).get("AutoRemove"))
        if ack and not autoremove:  # (an auto-removal deletes the task itself)
            try:
                await self.sup_request(sup.DeleteTask(container_id=cid))
            except RemoteError as exc:
                if exc.code is not ErrorCode.NOT_FOUND:
                    log.warning("delete of task %s failed: %s", cid[:12], exc)
        if rec is not None:
            self.notify(cid)
            if autoremove and cid in self.records:
                from . import api

                try:
                    await api.remove_container(self, rec, force=True, auto=True, exited=True)
                except (RemoteError, api.HTTPError) as exc:
                    log.warning("auto-remove of %s failed: %s", cid[:12], exc)


def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(prog="trioctrd", description="the trioctr daemon")
    p.add_argument("--root", "--data-root", dest="root", default="/var/lib/trioctr",
                   help="root directory of persistent state (default /var/lib/trioctr)")
    p.add_argument("--exec-root", default="/run/trioctr",
                   help="root directory of execution state (default /run/trioctr)")
    p.add_argument("-H", "--host", default="",
                   help="unix socket to listen on (default <exec-root>/trioctr.sock)")
    p.add_argument("--cgroup-parent", default="trioctr", help="parent cgroup of containers")
    p.add_argument("--add-runtime", action="append", default=[], metavar="NAME=PATH",
                   help="register an OCI runtime")
    p.add_argument("--default-runtime", default="trioctr")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]|CIDR",
                   help="allow plain HTTP to this registry")
    p.add_argument("--registry-mirror", action="append", default=[], metavar="URL",
                   help="preferred Docker registry mirror")
    p.add_argument("-l", "--log-level", default="info",
                   choices=["debug", "info", "warn", "error", "fatal"])
    args = p.parse_args(argv)
    host = args.host
    if host.startswith("unix://"):
        host = host[len("unix://"):]
    elif host and "://" in host:
        p.error(f"unsupported host {args.host!r}: only unix:// sockets are served")
    runtimes = {}
    for item in args.add_runtime:
        name, eq, path = item.partition("=")
        if not eq or not name or not path:
            p.error(f"invalid --add-runtime {item!r}: want NAME=PATH")
        runtimes[name] = path
    logging.basicConfig(level=getattr(logging, args.log_level.upper().replace("FATAL", "CRITICAL").replace("WARN", "WARNING")),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return Config(root=args.root, exec_root=args.exec_root, host=host,
                  cgroup_parent=args.cgroup_parent, runtimes=runtimes,
                  default_runtime=args.default_runtime,
                  insecure_registries=args.insecure_registry, registry_mirrors=args.registry_mirror)


async def amain(config: Config) -> None:
    daemon = Daemon(config)
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
            async with trio.open_nursery() as nursery:
                await nursery.start(daemon.run)
                pidfile = os.path.join(config.exec_root, "trioctrd.pid")
                with open(pidfile, "w") as f:
                    f.write(str(os.getpid()))
                async for signum in sigs:
                    log.info("signal %d: shutting down (containers keep running)", signum)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        daemon.close()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    # worker threads run Python here too (specs, record writes, removing a
    # container's directory): the loop gets the GIL back within this long
    # rather than the default 5 ms
    sys.setswitchinterval(0.0005)
    if os.geteuid() != 0:
        print("trioctrd: the daemon needs root (namespaces, mounts, cgroups)", file=sys.stderr)
        return 1
    try:
        trio.run(amain, config)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
