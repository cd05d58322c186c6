"""grm-ctl against a live tracker node over real DDS: each command's effect on the node, and its output."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from grm_ros.ros.ctl import main as ctl_main

from node_harness import Harness, image_msg, make_harness, scene, stamp

BOX = ("60", "40", "24", "24")  # the bright square of ``scene()``


@contextmanager
def node_spinning(h: Harness, publish_frames: bool = False) -> Iterator[None]:
    """Spin the node (and, optionally, stream frames to it) in the background while grm-ctl runs."""
    stop = threading.Event()

    def spin() -> None:
        sec = 100
        while not stop.is_set():
            if publish_frames:
                sec += 1
                h.image_pub.publish(image_msg(scene(), stamp(sec)))
            h.executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@pytest.fixture
def live(ros_context, executor) -> Iterator[Harness]:
    h = make_harness(ros_context, executor)
    h.send(scene(), stamp(1))  # a frame to set targets on
    yield h
    h.close()


def ctl(h: Harness, capsys, *argv: str) -> tuple[int, str, str]:
    with node_spinning(h, publish_frames=argv[0] == "tracks"):
        rc = ctl_main(["--node", h.node.get_fully_qualified_name(), "--timeout", "15", *argv],
                      context=h.node.context)
    out, err = capsys.readouterr()
    return rc, out, err


def test_set_target_then_stop(live, capsys):
    rc, out, _ = ctl(live, capsys, "set-target", *BOX, "--label", "square", "--stamp", "1.0")
    assert rc == 0 and out.startswith("target 1:")
    (track,) = live.send(scene(), stamp(2)).tracks
    assert (track.id, track.label) == (1, "square")
    assert (track.center_x, track.center_y) != (0.0, 0.0)

    rc, out, err = ctl(live, capsys, "stop", "7")
    assert rc == 1 and err.strip() == "error: refused: no target 7 (tracked: [1])"
    rc, out, _ = ctl(live, capsys, "stop", "1")
    assert rc == 0 and out.strip() == "stopped target 1"
    assert live.send(scene(), stamp(3)).tracks == []


def test_reset_stops_the_targets_and_forgets_the_frames(live, capsys):
    assert ctl(live, capsys, "set-target", *BOX)[0] == 0
    rc, out, _ = ctl(live, capsys, "reset")
    assert rc == 0 and out.startswith("stopped 1 targets and forgot ")
    rc, _, err = ctl(live, capsys, "set-target", *BOX, "--stamp", "1")  # that frame is forgotten
    assert rc == 1 and "unknown stamp" in err


def test_set_target_refusal_is_one_error_line(live, capsys):
    rc, out, err = ctl(live, capsys, "set-target", "5000", "5000", "10", "10")
    assert rc == 1 and out == ""
    assert err.startswith("error: refused: ") and err.count("\n") == 1 and "outside" in err


def test_tracks_prints_one_line_per_target(live, capsys):
    for label in ("a", "b"):
        assert ctl(live, capsys, "set-target", *BOX, "--label", label)[0] == 0
    rc, out, _ = ctl(live, capsys, "tracks", "--count", "3")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 6  # 3 messages x 2 targets
    assert {line.split()[1] for line in lines} == {"id=1", "id=2"}
    assert all(" box=" in line and " confidence=" in line for line in lines)
    assert {line.rsplit("label=", 1)[1] for line in lines} == {"'a'", "'b'"}


def test_status_reports_the_nodes_diagnostics(live, capsys):
    assert ctl(live, capsys, "set-target", *BOX)[0] == 0
    rc, out, _ = ctl(live, capsys, "status")
    assert rc == 0
    assert out.splitlines()[0].startswith("OK: active: 1 targets")
    assert "  state: active" in out.splitlines()


def test_lifecycle_deactivate_then_status_says_inactive(live, capsys):
    assert ctl(live, capsys, "lifecycle", "deactivate")[:2] == (0, "deactivate: done\n")
    assert live.node.lifecycle_state == "inactive"
    rc, out, _ = ctl(live, capsys, "status")
    assert rc == 0 and out.startswith("WARN: inactive")


def test_console_script_times_out_with_one_line_when_no_node_answers():
    exe = shutil.which("grm-ctl")
    assert exe, "grm-ctl is not installed (make setup installs the console scripts)"
    proc = subprocess.run([exe, "--node", "/nobody_here", "--timeout", "1", "reset"], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == ("error: no service /nobody_here/reset within 1 s (is the node up? --node "
                           "names it)\n")
