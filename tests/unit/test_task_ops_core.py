"""Pure cores of exec, pause and update: the shim's exec output buffer and
task states, the daemon's update checks and LinuxResources.  No root."""

import pytest

from actors.api_exec import linux_resources, validate_update
from actors.http import HTTPError
from actors.shim import OutputBuffer, StateError, Status, TaskState


def test_output_buffer_reads_repeat_until_acknowledged():
    b = OutputBuffer()
    b.add(1, b"hello ")
    b.add(2, b"err")
    b.add(1, b"world")
    chunks, end = b.take(0, 100)
    assert chunks == [(1, b"hello "), (2, b"err"), (1, b"world")] and end == 14
    # the reply was lost: the same offset gives the same bytes
    assert b.take(0, 100) == (chunks, end)
    b.ack(6)
    assert b.pending == 8 and b.take(6, 100) == ([(2, b"err"), (1, b"world")], 14)
    b.ack(14)
    assert b.pending == 0 and b.chunks == [] and b.take(14, 100) == ([], 14)


def test_output_buffer_bounds_a_reply_and_resumes_mid_chunk():
    b = OutputBuffer()
    b.add(1, b"abcdef")
    b.add(1, b"gh")
    assert b.take(0, 4) == ([(1, b"abcd")], 4)
    b.ack(4)
    assert b.take(4, 100) == ([(1, b"efgh")], 8)  # same stream: merged
    b.ack(100)  # past the end: clamped
    assert b.acked == 8


def test_task_pause_resume_and_exec_states():
    t = TaskState()
    t.created(5)
    with pytest.raises(StateError, match="cannot pause task in created state"):
        t.check_pause()
    t.started()
    t.check_exec()
    t.check_pause()
    t.paused()
    assert t.status is Status.PAUSED
    with pytest.raises(StateError, match="cannot exec in a paused task"):
        t.check_exec()
    with pytest.raises(StateError, match="cannot delete task in paused state"):
        t.check_delete()
    t.check_kill()
    t.check_resume()
    t.resumed()
    with pytest.raises(StateError, match="cannot resume task in running state"):
        t.check_resume()
    t.paused()
    t.exited(137, 1)  # killed while frozen
    assert t.status is Status.STOPPED
    with pytest.raises(StateError):
        t.check_update()


@pytest.mark.parametrize("body, message", [
    ({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 8 << 20, "MemorySwap": 7 << 20},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"Memory": 8 << 20, "MemoryReservation": 16 << 20},
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000}, "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    ({"CpuPeriod": 10}, "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"),
    ({"CpuQuota": 10}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    ({"BlkioWeight": 2000}, "Range of blkio weight is from 10 to 1000"),
    ({"CpusetMems": "1-0"}, "Invalid value 1-0 for cpuset mems"),
    ({"Memory": "64m"}, "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64"),
    ({"KernelMemory": 1 << 30}, "KernelMemory cannot be updated by trioctr yet"),
])
def test_update_refusals(body, message):
    with pytest.raises(HTTPError) as info:
        validate_update(body, {})
    assert (info.value.status, info.value.message) == (400, message)


def test_update_against_what_is_set():
    with pytest.raises(HTTPError, match="Memory limit should be smaller than already set memoryswap"):
        validate_update({"Memory": 256 << 20}, {"Memory": 64 << 20, "MemorySwap": 128 << 20})
    with pytest.raises(HTTPError, match="Nano CPUs cannot be updated as CPU Period has already been set"):
        validate_update({"NanoCpus": 10**9}, {"CpuPeriod": 100000})
    assert validate_update({"Memory": 256 << 20, "MemorySwap": -1}, {"MemorySwap": 128 << 20}) == \
        {"Memory": 256 << 20, "MemorySwap": -1}
    # zero means "unchanged"; a pids limit of 0 or -1 means unlimited
    assert validate_update({"Memory": 0, "CpuShares": 0, "PidsLimit": -1}, {}) == {"PidsLimit": None}


def test_linux_resources_of_a_host_config():
    res = linux_resources({"Memory": 64 << 20, "MemorySwap": 0, "NanoCpus": 5 * 10**8,
                           "PidsLimit": 20, "CpuShares": 512, "BlkioWeight": 300, "CpusetCpus": "0"})
    assert res == {"memory": {"limit": 64 << 20, "swap": 128 << 20},
                   "cpu": {"shares": 512, "period": 100000, "quota": 50000, "cpus": "0"},
                   "pids": {"limit": 20}, "blockIO": {"weight": 300}}
    assert linux_resources({"PidsLimit": None})["pids"] == {"limit": -1}
