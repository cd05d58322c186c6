"""``grm-operator``: a web page to watch a live tracker node, point at a target, stop it, drive its lifecycle.

An aiohttp server with an rclpy node inside (``OperatorBridge``). Each open page holds one WebSocket:
the server pushes the overlay as JPEG (binary messages: the frame's stamp, then the JPEG), the latest
tracks and the node's /diagnostics status (JSON); the page sends service requests (JSON) and gets the
node's reply, in the node's own words. A page that reads slowly gets fewer frames, never a backlog:
each page keeps only the newest frame not yet sent. The page itself is plain HTML/JS in ``static/``.

Binds 127.0.0.1 unless told otherwise: whoever reaches the page can steer the tracker.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rclpy
from aiohttp import WSMsgType, web
from rclpy.context import Context
from rclpy.utilities import remove_ros_args

from grm_ros.ros.operator.bridge import BadRequest, Frame, OperatorBridge

STATIC = Path(__file__).resolve().with_name("static")
CALL_TIMEOUT = 15.0  # s before a page is told that the node did not answer


class Page:
    """One open page: its socket and what is waiting to be sent to it (newest frame and state only)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.frame: bytes | None = None
        self.latest: dict[str, dict[str, Any]] = {}  # by message type: only the newest matters
        self.replies: list[dict[str, Any]] = []  # every reply matters, in order
        self.wake = asyncio.Event()

    def push(self, message: dict[str, Any]) -> None:
        if message["type"] == "reply":
            self.replies.append(message)
        else:
            self.latest[message["type"]] = message
        self.wake.set()

    def push_frame(self, packet: bytes) -> None:
        self.frame = packet
        self.wake.set()

    async def send_loop(self) -> None:
        try:
            while not self.ws.closed:
                await self.wake.wait()
                self.wake.clear()
                while self.replies:
                    await self.ws.send_json(self.replies.pop(0))
                for kind in list(self.latest):
                    await self.ws.send_json(self.latest.pop(kind))
                if self.frame is not None:
                    packet, self.frame = self.frame, None
                    await self.ws.send_bytes(packet)
        except ConnectionError:  # the page went away mid-send; its handler cleans up
            return


class Hub:
    """All open pages. The bridge calls ``frame``/``tracks``/``status`` from its thread (the ``Listener``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pages: set[Page] = set()
        self.bridge: OperatorBridge | None = None
        self._last: dict[str, dict[str, Any]] = {}  # for pages that open later

    # Listener: from the bridge's thread onto the loop.
    def frame(self, frame: Frame) -> None:
        self.loop.call_soon_threadsafe(self._frame, frame.packet())

    def tracks(self, tracks: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self._state, tracks)

    def status(self, status: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self._state, status)

    def _frame(self, packet: bytes) -> None:
        for page in self.pages:
            page.push_frame(packet)

    def _state(self, message: dict[str, Any]) -> None:
        self._last[message["type"]] = message
        for page in self.pages:
            page.push(message)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        page = Page(ws)
        page.push({"type": "hello", "tracker": self.bridge.tracker})
        for message in self._last.values():
            page.push(message)
        self.pages.add(page)
        self.bridge.watch(True)
        sender = asyncio.create_task(page.send_loop())
        calls: set[asyncio.Task[None]] = set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    task = asyncio.create_task(self._call(page, msg.data))
                    calls.add(task)
                    task.add_done_callback(calls.discard)
        finally:
            self.pages.discard(page)
            self.bridge.watch(bool(self.pages))
            sender.cancel()
            for task in calls:
                task.cancel()
        return ws

    async def _call(self, page: Page, text: str) -> None:
        """One request from a page -> one reply to that page, with the node's answer verbatim."""
        try:
            request = json.loads(text)
            if not isinstance(request, dict):
                raise BadRequest("a request is a JSON object")
        except (ValueError, BadRequest) as err:
            page.push({"type": "reply", "id": None, "op": "", "success": False,
                       "message": f"bad request: {err}"})
            return
        op, request_id = request.get("op", ""), request.get("id")
        try:
            future = self.bridge.call(op, request)
            answer = await asyncio.wait_for(asyncio.wrap_future(future), CALL_TIMEOUT)
        except BadRequest as err:
            answer = {"success": False, "message": f"bad request: {err}"}
        except TimeoutError:
            answer = {"success": False, "message": f"{op}: no answer from {self.bridge.tracker} within "
                                                   f"{CALL_TIMEOUT:g} s"}
        page.push({"type": "reply", "id": request_id, "op": op, **answer})

    async def close(self) -> None:
        for page in list(self.pages):
            await page.ws.close()


HUB = web.AppKey("hub", Hub)


def make_app(tracker: str, context: Context | None = None, jpeg_quality: int = 80) -> web.Application:
    """The operator's web application; its bridge starts with the app and stops with it."""

    async def start(app: web.Application) -> None:
        hub = Hub(asyncio.get_running_loop())
        hub.bridge = OperatorBridge(tracker, hub, context, jpeg_quality)
        app[HUB] = hub

    async def stop(app: web.Application) -> None:
        await app[HUB].close()
        app[HUB].bridge.close()

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def socket(request: web.Request) -> web.WebSocketResponse:
        return await request.app[HUB].handle(request)

    app = web.Application()
    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    app.router.add_get("/", index)
    app.router.add_get("/ws", socket)
    app.router.add_static("/static", STATIC)
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grm-operator", description="A web page to watch a live tracker "
                                     "node, point at a target, stop it and drive its lifecycle.")
    parser.add_argument("--node", default="/grm_tracker", help="fully qualified name of the tracker node")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port (0: any free one)")
    parser.add_argument("--jpeg-quality", type=int, default=80, choices=range(10, 101), metavar="10..100")
    return parser


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(args.node, jpeg_quality=args.jpeg_quality))
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1]
        print(f"grm-operator: serving {args.node} on http://{args.host}:{port}/", flush=True)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``grm-operator``; ROS arguments (``--ros-args ...``) go to rclpy."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(remove_ros_args(["grm-operator", *argv])[1:])
    if not args.node.startswith("/"):
        parser.error(f"--node must be a fully qualified node name such as /grm_tracker, got {args.node!r}")
    if not is_loopback(args.host):
        print(f"grm-operator: warning: serving on {args.host}, not a loopback address: anyone who reaches "
              "this machine can steer the tracker", file=sys.stderr)
    rclpy.init(args=["grm-operator", *argv])
    try:
        asyncio.run(serve(args))
    except OSError as err:  # the port is taken, the address is not this machine's
        print(f"grm-operator: error: cannot serve on {args.host}:{args.port}: {err.strerror or err}",
              file=sys.stderr)
        return 2
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
