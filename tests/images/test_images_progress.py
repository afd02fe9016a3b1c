"""The CLI's rendering of JSON progress streams (cli/progress.py): exact text
for a terminal (per-layer lines redrawn with cursor moves) and off a terminal,
then `trioctr pull` and `trioctr load` under a real pty."""

from __future__ import annotations

import io
import sys

import pytest

from cli import progress
from cli.images import display_messages
from tests.helpers.engine import Engine
from tests.helpers.engine import env as engine_env
from tests.helpers.pty import run_in_pty
from tests.images import registry_env as env

E = "\x1b["

PULL = [
    {"status": "Pulling from library/busybox", "id": "latest"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"},
    {"status": "Downloading", "progressDetail": {"current": 1200000, "total": 3400000},
     "progress": "[=================>    ]  1.2MB/3.4MB", "id": "aaa"},
    {"status": "Download complete", "progressDetail": {}, "id": "bbb"},
    {"status": "Digest: sha256:0123"},
    {"status": "Status: Downloaded newer image for busybox:latest"},
]


def render(msgs, **kw):
    out = io.StringIO()
    progress.render(msgs, out, **kw)
    return out.getvalue()


def test_progress_string():
    d = {"current": 1200000, "total": 3400000}
    assert progress.progress_string(d, 200) == "[=================>" + " " * 33 + "]    1.2MB/3.4MB"
    assert progress.progress_string(d, 80) == "   1.2MB/3.4MB"  # no bar on a narrow terminal
    assert progress.progress_string({"current": 5000}, 200) == "     5kB"
    assert progress.progress_string({}, 200) == ""
    assert progress.progress_string({"current": 9, "total": 4}, 200).endswith(">] " + "      9B")
    assert progress.progress_string({"current": 2, "total": 4, "units": "items"}, 80) == "2/4 items"
    assert progress.progress_string({"current": 50, "total": 100, "start": 1000}, 80, now=1010) \
        == "     50B/100B 10s"
    assert progress.progress_string({"current": 1, "total": 100, "start": 1000}, 80, now=1010) \
        == "      1B/100B 16m30s"
    assert progress.progress_string({"current": 1, "total": 100, "start": 1000}, 50, now=1010) \
        == "      1B/100B"  # no time left on a terminal 50 columns wide


def test_render_terminal_redraws_each_layer_line():
    bar = "[=================>" + " " * 33 + "]    1.2MB/3.4MB"
    assert render(PULL, terminal=True, width=200) == (
        "latest: Pulling from library/busybox\n"
        # aaa: a new line, erased and written in place
        "\n" + E + "1A" + E + "2K\raaa: Pulling fs layer \r" + E + "1B"
        # bbb: a second line
        "\n" + E + "1A" + E + "2K\rbbb: Pulling fs layer \r" + E + "1B"
        # aaa again: two lines up, redraw, two lines down
        + E + "2A" + E + "2K\raaa: Downloading " + bar + "\r" + E + "2B"
        + E + "1A" + E + "2K\rbbb: Download complete \r" + E + "1B"
        "Digest: sha256:0123\n"
        "Status: Downloaded newer image for busybox:latest\n")


def test_render_plain_hides_bars_like_display_messages():
    plain = render(PULL, terminal=False)
    assert plain == ("latest: Pulling from library/busybox\naaa: Pulling fs layer\n"
                     "bbb: Pulling fs layer\nbbb: Download complete\nDigest: sha256:0123\n"
                     "Status: Downloaded newer image for busybox:latest\n")
    # the existing non-terminal renderer (kept byte for byte) says the same
    out = io.StringIO()
    display_messages(PULL, out)
    assert out.getvalue() == plain


def test_render_errors_and_streams():
    msgs = [{"stream": "Loaded image: a:1\n"},
            {"status": "Loading layer", "progressDetail": {"current": 5, "total": 10}, "id": "x"},
            {"errorDetail": {"message": "boom"}, "error": "boom"}]
    out = io.StringIO()
    with pytest.raises(progress.StreamFailed) as exc:
        progress.render(msgs, out, terminal=True, width=80)
    assert str(exc.value) == "boom"
    assert out.getvalue() == ("Loaded image: a:1\n\n" + E + "1A" + E + "2K\rx: Loading layer "
                              "      5B/10B\r" + E + "1B")
    aux = []
    progress.render([{"aux": {"Tag": "1"}}], io.StringIO(), on_aux=aux.append)
    assert aux == [{"Tag": "1"}]


def _pty_run(args, cols=150):
    rc, out, err = run_in_pty([sys.executable, "-m", "cli", *args], engine_env(), size=(40, cols),
                              separate_stderr=True, timeout=120)
    return rc, out.decode(errors="replace"), err


@pytest.fixture(scope="module")
def engine():
    e = Engine()
    try:
        e.start()
        yield e
    finally:
        e.cleanup()


def test_pull_under_a_pty_draws_progress(engine, registry, layout, repo_name, busybox_layer):
    desc, cfg, info = layout.image([busybox_layer], cmd=["sh"])
    layout.tag("latest", desc)
    env.skopeo_copy(f"oci:{layout.path}:latest", f"docker://{registry.host}/{repo_name}:latest")
    ref = f"{registry.host}/{repo_name}"
    lid = info["layers"][0]["digest"][7:19]
    rc, out, err = _pty_run(["-H", f"unix://{engine.sock}", "pull", ref], cols=150)
    assert rc == 0, err
    out = out.replace("\r\n", "\n")  # the pty's onlcr
    assert out.startswith(f"Using default tag: latest\nlatest: Pulling from {repo_name}\n\n")
    assert f"{E}1A{E}2K\r{lid}: Pulling fs layer \r{E}1B" in out
    assert f"{lid}: Downloading [" in out and "=>]" in out  # a bar at 150 columns
    assert f"{E}2K\r{lid}: Pull complete \r{E}1B" in out
    assert out.endswith(f"Status: Downloaded newer image for {ref}:latest\n{ref}:latest\n")
    # the same pull off a terminal: plain lines, no escape sequences (as before)
    engine.cli("rmi", ref, check=True)
    res = engine.cli("pull", ref)
    assert res.returncode == 0 and E not in res.stdout.decode()
    assert f"{lid}: Pull complete\n" in res.stdout.decode()
    engine.cli("rmi", ref, check=True)


def test_load_under_a_pty_shows_loading_layer(engine, tmp_path):
    from tests.helpers.images import busybox_rootfs_tar
    bb = str(tmp_path / "bb.tar")
    busybox_rootfs_tar(bb)
    engine.cli("import", bb, "pty/bb:1", check=True)
    saved = str(tmp_path / "s.tar")
    engine.cli("save", "-o", saved, "pty/bb:1", check=True)
    engine.cli("rmi", "pty/bb:1", check=True)
    rc, out, err = _pty_run(["-H", f"unix://{engine.sock}", "load", "-i", saved], cols=150)
    assert rc == 0, err
    out = out.replace("\r\n", "\n")
    assert ": Loading layer [" in out and "2.14MB/2.14MB\r" in out
    assert out.endswith("Loaded image: pty/bb:1\n")
    rc, out, err = _pty_run(["-H", f"unix://{engine.sock}", "load", "-q", "-i", saved])
    assert rc == 0 and out.replace("\r\n", "\n") == "Loaded image: pty/bb:1\n"
