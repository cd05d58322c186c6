"""grm-ctl: the tracker node's everyday operations from a shell, for set-ups without the ``ros2`` CLI.

The pip environment (``make setup``) has rclpy but no ros2cli, so ``ros2 service call`` and
``ros2 topic echo`` are not there; each sub-command here is one of those calls, made with rclpy.
Like the node, it joins the DDS domain of its environment. Exit status: 0 done, 1 the node refused or
did not answer in time, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_srvs.srv import Trigger

from grm_ros.msg import Track, TrackArray
from grm_ros.ros.messages import center_to_xywh, xywh_to_center
from grm_ros.ros.spin import spin_until
from grm_ros.srv import SetTarget, StopTarget

LIFECYCLE = ("configure", "activate", "deactivate", "cleanup", "shutdown")
STATES = {Track.STATE_UNKNOWN: "unknown", Track.STATE_TRACKING: "tracking", Track.STATE_LOST: "lost",
          Track.STATE_STOPPED: "stopped"}
LEVELS = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


class CtlError(RuntimeError):
    """The node refused, or did not answer in time; the message says which."""


def parse_stamp(text: str) -> Time:
    """``1732790000.5`` (seconds) -> builtin_interfaces/Time, exactly to the nanosecond."""
    sec, _, frac = text.partition(".")
    if not sec.isdigit() or not (frac == "" or frac.isdigit()) or len(frac) > 9:
        raise argparse.ArgumentTypeError(f"stamp must be seconds like 1732790000.5, got {text!r}")
    return Time(sec=int(sec), nanosec=int(frac.ljust(9, "0")))


def track_line(track: Track) -> str:
    """One line per target: stamp, id, state, box x,y,w,h (top-left corner), confidence, age, label."""
    x, y, w, h = center_to_xywh(track.center_x, track.center_y, track.size_x, track.size_y)
    stamp = f"{track.header.stamp.sec}.{track.header.stamp.nanosec:09d}"
    return (f"{stamp} id={track.id} {STATES.get(track.state, track.state)} box={x:.1f},{y:.1f},{w:.1f},"
            f"{h:.1f} confidence={track.confidence:.3f} age={track.age} label={track.label!r}")


class Ctl:
    """One short-lived client node; every call spins it until the reply (or the timeout)."""

    def __init__(self, target: str, timeout: float, context: Context | None = None) -> None:
        self.target = target if target.startswith("/") else f"/{target}"
        self.timeout = timeout
        self.node = Node("grm_ctl", context=context, start_parameter_services=False)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.executor.shutdown()

    def call(self, srv_type: Any, name: str, request: Any) -> Any:
        client = self.node.create_client(srv_type, f"{self.target}/{name}")
        if not spin_until(self.executor, client.service_is_ready, self.timeout):
            raise CtlError(f"no service {self.target}/{name} within {self.timeout:g} s (is the node up? "
                           "--node names it)")
        future = client.call_async(request)
        if not spin_until(self.executor, future.done, self.timeout):
            raise CtlError(f"{self.target}/{name} did not answer within {self.timeout:g} s")
        return future.result()

    def watch(self, msg_type: Any, topic: str, on_msg: Callable[[Any], bool], what: str,
              forever: bool = False) -> None:
        """Spin until ``on_msg`` returns True; fail after the timeout unless ``forever`` (until Ctrl-C)."""
        done: list[bool] = []

        def receive(msg: Any) -> None:
            if not done and on_msg(msg):
                done.append(True)

        self.node.create_subscription(msg_type, topic, receive, 10)
        if not spin_until(self.executor, lambda: bool(done), math.inf if forever else self.timeout):
            raise CtlError(f"no {what} from {self.target} within {self.timeout:g} s")


def _granted(reply: Any) -> Any:
    """The reply of a service with ``success`` and ``message``; a refusal becomes the error line."""
    if not reply.success:
        raise CtlError(f"refused: {reply.message}")
    return reply


def _set_target(ctl: Ctl, args: argparse.Namespace) -> str:
    cx, cy, sx, sy = xywh_to_center((args.x, args.y, args.w, args.h))
    reply = _granted(ctl.call(SetTarget, "set_target", SetTarget.Request(
        center_x=cx, center_y=cy, size_x=sx, size_y=sy, stamp=args.stamp or Time(), target_id=args.id,
        label=args.label)))
    return f"target {reply.target_id}: {reply.message}"


def _stop(ctl: Ctl, args: argparse.Namespace) -> str:
    return _granted(ctl.call(StopTarget, "stop_target", StopTarget.Request(target_id=args.id))).message


def _reset(ctl: Ctl, args: argparse.Namespace) -> str:
    return _granted(ctl.call(Trigger, "reset", Trigger.Request())).message


def _lifecycle(ctl: Ctl, args: argparse.Namespace) -> str:
    # By label: the node picks the transition from its current state (there are three "shutdown"s).
    reply = ctl.call(ChangeState, "change_state", ChangeState.Request(transition=Transition(
        label=args.transition)))
    if not reply.success:
        raise CtlError(f"{args.transition} refused or failed (`grm-ctl status` says why)")
    return f"{args.transition}: done"


def _tracks(ctl: Ctl, args: argparse.Namespace) -> str:
    seen = [0]

    def on_tracks(msg: TrackArray) -> bool:
        for track in msg.tracks:
            print(track_line(track), flush=True)
        seen[0] += 1
        return 0 < args.count <= seen[0]

    ctl.watch(TrackArray, f"{ctl.target}/tracks", on_tracks, f"{args.count} tracks messages",
              forever=args.count == 0)
    return ""


def _status(ctl: Ctl, args: argparse.Namespace) -> str:
    name = f"{ctl.target}: tracker"
    lines: list[str] = []

    def on_diagnostics(msg: DiagnosticArray) -> bool:
        for status in msg.status:
            if status.name == name:
                level = int.from_bytes(status.level, "little")  # a byte field arrives as bytes
                lines.append(f"{LEVELS.get(level, level)}: {status.message}")
                lines.extend(f"  {v.key}: {v.value}" for v in status.values)
                return True
        return False

    ctl.watch(DiagnosticArray, "/diagnostics", on_diagnostics, "status on /diagnostics")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grm-ctl", description=__doc__.splitlines()[0])
    parser.add_argument("--node", default="/grm_tracker",
                        help="the tracker node's name with its namespace (default /grm_tracker)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the node")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("set-target", help="track the box x y w h (top-left corner and size, pixels)")
    for coordinate in ("x", "y", "w", "h"):
        p.add_argument(coordinate, type=float)
    p.add_argument("--stamp", type=parse_stamp, help="stamp (seconds) of the frame the box was drawn on; "
                   "default: the latest frame")
    p.add_argument("--label", default="", help="label carried by the target's tracks")
    p.add_argument("--id", type=int, default=0, help="restart this target id (default: a new id)")
    p.set_defaults(run=_set_target)
    p = sub.add_parser("stop", help="stop one target, or all of them")
    p.add_argument("id", type=int, nargs="?", default=0, help="target id (default 0: all)")
    p.set_defaults(run=_stop)
    sub.add_parser("reset", help="stop all targets and forget the buffered frames").set_defaults(run=_reset)
    p = sub.add_parser("tracks", help="print each target of ~/tracks, one line per target")
    p.add_argument("--count", type=int, default=0, help="stop after this many messages (default: never)")
    p.set_defaults(run=_tracks)
    sub.add_parser("status", help="the node's latest /diagnostics status").set_defaults(run=_status)
    p = sub.add_parser("lifecycle", help="a lifecycle transition")
    p.add_argument("transition", choices=LIFECYCLE)
    p.set_defaults(run=_lifecycle)
    return parser


def main(argv: Sequence[str] | None = None, context: Context | None = None) -> int:
    """Entry point of ``grm-ctl``; ``context`` lets tests run it beside a node in one process."""
    args = build_parser().parse_args(argv)
    own = context is None
    context = context or Context()
    if own:
        rclpy.init(context=context)
    ctl = Ctl(args.node, args.timeout, context)
    try:
        output = args.run(ctl, args)
    except CtlError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        ctl.close()
        if own:
            rclpy.try_shutdown(context=context)
    if output:
        print(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
