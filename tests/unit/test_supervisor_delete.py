"""A shim that dies while it deletes its task (its link closes before the
reply): the supervisor must let the task go (clean up as for a lost shim),
not keep a handle with a dead link that makes every later create of that
container ALREADY_EXISTS and every delete UNAVAILABLE."""

from __future__ import annotations

import os

import trio

from actors import supervisor as supmod
from messages import shim as sh
from messages import supervisor as sup
from messages.errors import RemoteError
from messages.link import Link, open_unix_link


def test_a_shim_dying_during_delete_does_not_wedge_its_container():
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix="sd")  # short: sun_path holds 108 bytes
    try:
        _run(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(root: str) -> None:
    cid = "d" * 64
    s = supmod.Supervisor(root, {})
    d = os.path.join(s.shims_dir, cid)
    os.makedirs(d)

    class DiesOnDelete:
        async def handle_request(self, link, msg):
            if isinstance(msg, sh.ShimDelete):
                await link.aclose()  # as a shim SIGKILLed mid-delete
                await trio.sleep_forever()
            if isinstance(msg, sh.ShimState):
                return sh.ShimStateReply(task=sup.TaskInfo(container_id=cid, pid=0, status="stopped"))
            raise AssertionError(msg)

        async def handle_event(self, link, msg):
            pass

    async def main():
        lsock = trio.socket.socket(trio.socket.AF_UNIX)
        await lsock.bind(os.path.join(d, "shim.sock"))
        lsock.listen(4)
        listener = trio.SocketListener(lsock)
        async with trio.open_nursery() as n:
            s._nursery = n

            async def serve_one():
                stream = await listener.accept()
                link = Link(stream, role="shim", name="fake")
                await link.handshake()
                await link.serve(DiesOnDelete())

            n.start_soon(serve_one)
            handle = supmod.ShimHandle(cid, d)
            handle.link = await open_unix_link(os.path.join(d, "shim.sock"), role="supervisor")
            s.shims[cid] = handle
            n.start_soon(s._watch_shim, handle)
            try:
                reply = await s.delete(handle)
                assert isinstance(reply, sup.TaskDeleted)
            except RemoteError:
                pass
            await trio.sleep(1.5)  # (whatever _watch_shim does after a link loss)
            n.cancel_scope.cancel()

    trio.run(main)
    assert cid not in s.shims
    assert not os.path.exists(d)
