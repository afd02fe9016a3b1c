import json
import os
import signal

import pytest

from actors import logs as L
from actors.shim import JsonLogWriter, classify_exec_failure, StateError, Status, TaskState, wait_status_to_exit_code


def test_task_state_machine_refuses_out_of_order():
    t = TaskState()
    with pytest.raises(StateError, match="cannot start task in new state"):
        t.started()
    t.created(10)
    with pytest.raises(StateError, match="cannot delete task in created state"):
        t.check_delete()
    t.started()
    assert t.status is Status.RUNNING
    with pytest.raises(StateError):
        t.created(11)
    t.exited(3, 5)
    t.exited(9, 6)  # a second exit report changes nothing
    assert (t.status, t.exit_status, t.exited_at) == (Status.STOPPED, 3, 5)
    with pytest.raises(StateError, match="cannot kill task in stopped state"):
        t.check_kill()
    t.check_delete()


def test_an_exit_before_start_returns_is_not_lost():
    # the runtime's `start` releases the init; a short command can exit (and
    # be reaped) before the `start` process itself has exited
    t = TaskState()
    t.created(10)
    t.check_start()
    t.exited(0, 7)
    t.started()
    assert (t.status, t.exit_status) == (Status.STOPPED, 0)


def test_wait_status_to_docker_exit_code():
    assert wait_status_to_exit_code(3 << 8) == 3
    assert wait_status_to_exit_code(signal.SIGKILL) == 137
    assert wait_status_to_exit_code(signal.SIGTERM) == 143


def test_json_log_writer_lines_partial_and_long(tmp_path):
    p = str(tmp_path / "c-json.log")
    w = JsonLogWriter(p)
    w.write("stdout", b"hel")
    w.write("stdout", b"lo\nwor")
    w.write("stderr", b"err\n")
    w.write("stdout", b"x" * (JsonLogWriter.MAX_LINE + 10))
    w.close()
    recs = [json.loads(line) for line in open(p)]
    assert recs[0]["log"] == "hello\n" and recs[0]["stream"] == "stdout"
    assert recs[1] == {**recs[1], "log": "err\n", "stream": "stderr"}
    assert recs[2]["log"] == "wor" + "x" * (JsonLogWriter.MAX_LINE - 3)
    assert recs[3]["log"] == "x" * 13
    assert all(r["time"].endswith("Z") for r in recs)


def test_log_reader_tail_and_framing(tmp_path):
    p = str(tmp_path / "c-json.log")
    w = JsonLogWriter(p)
    for i in range(100):
        w.write("stdout" if i % 2 == 0 else "stderr", f"line {i}\n".encode())
    w.close()
    off = L.tail_offset(p, 3)
    entries, end = L.read_from(p, off)
    assert [e[1] for e in entries] == [b"line 97\n", b"line 98\n", b"line 99\n"]
    assert end == os.path.getsize(p)
    assert L.tail_offset(p, 0) == end
    assert L.tail_offset(p, 1000) == 0
    framed = b"".join(L.render(entries, stdout=True, stderr=False, timestamps=False, tty=False))
    assert framed == L.frame(1, b"line 98\n")
    raw = b"".join(L.render(entries, stdout=True, stderr=True, timestamps=False, tty=True))
    assert raw == b"line 97\nline 98\nline 99\n"


def test_log_reader_leaves_a_torn_line(tmp_path):
    p = tmp_path / "c-json.log"
    p.write_bytes(b'{"log":"a\\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}\n{"log":"b')
    entries, off = L.read_from(str(p), 0)
    assert [e[1] for e in entries] == [b"a\n"]
    assert off == p.read_bytes().index(b"\n") + 1


def test_runc_exec_failures_map_to_dockers_codes():
    text = ('runc create failed: unable to start container process: exec: "nosuch": '
            'executable file not found in $PATH')
    assert classify_exec_failure(text) == (127, 'exec: "nosuch": executable file not found in $PATH')
    text = 'runc create failed: unable to start container process: exec: "/etc": permission denied'
    assert classify_exec_failure(text)[0] == 126
    assert classify_exec_failure("runc create failed: cgroup: no space left on device") is None


def test_kill_does_not_signal_a_reaped_init(tmp_path, monkeypatch):
    """Between the init's reaping and its exit being recorded (the output is
    drained first, up to 2 s) its pid is free for reuse: a kill then must not
    signal whatever process has it now."""
    import os
    import subprocess
    import time

    import trio

    from actors import shim

    svc = shim.ShimService(str(tmp_path), shim.ShimConfig(id="c" * 64, runtime_root=str(tmp_path)))
    p = subprocess.Popen(["true"])
    while open(f"/proc/{p.pid}/stat").read().split(") ")[1][0] != "Z":
        time.sleep(0.01)
    sent = []
    real_kill = os.kill

    def fake_kill(pid, sig):
        if pid == p.pid:
            sent.append(sig)
            return None
        return real_kill(pid, sig)

    async def main():
        async with trio.open_nursery() as n:
            svc._nursery = n
            svc.task.created(p.pid)
            svc.task.started()
            n.start_soon(svc._wait_init, p.pid)
            await trio.sleep(0.2)  # reaped; the exit is not recorded yet (no output drained)
            assert svc.task.status is shim.Status.RUNNING
            monkeypatch.setattr(os, "kill", fake_kill)
            await svc._kill(15, False)
            n.cancel_scope.cancel()

    trio.run(main)
    p.returncode = 0
    assert sent == []


async def test_the_reaper_drops_the_exit_of_a_forgotten_child_and_keeps_the_others():
    # the intermediate of a create run in the shim is let go once it reported
    # (Reaper.forget): its exit must not pile up among the unclaimed ones
    import trio

    from actors.shim import Reaper

    reaper = Reaper()
    async with trio.open_nursery() as n:
        await n.start(reaper.run)
        early = os.fork()
        if early == 0:
            os._exit(3)
        late = os.fork()
        if late == 0:
            os._exit(4)
        kept = os.fork()
        if kept == 0:
            os._exit(5)
        reaper.forget(late)  # before it exits
        assert wait_status_to_exit_code(await reaper.wait(kept)) == 5
        with trio.fail_after(5):
            while early not in reaper.exits or late in reaper._forgotten:
                await trio.sleep(0.01)
        reaper.forget(early)  # after it exited
        assert reaper.exits == {} and reaper._forgotten == set()
        n.cancel_scope.cancel()
