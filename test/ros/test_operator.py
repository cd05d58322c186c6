"""grm-operator's server and bridge against a real tracker node, with WebSocket clients as the pages."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
from aiohttp import WSMsgType, test_utils

from grm_ros.ros.operator.server import is_loopback, main, make_app

from node_harness import image_msg, make_harness, scene, stamp


@contextmanager
def spinning(executor) -> Iterator[None]:
    """Spin the harness's executor on a thread while the test awaits on its event loop."""
    running = True

    def spin() -> None:
        while running:
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        running = False
        thread.join()


class PageClient:
    """One page's WebSocket: keeps the newest frame and status, every tracks message and reply."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[tuple[int, int, np.ndarray]] = []
        self.tracks: list[dict] = []
        self.replies: list[dict] = []
        self.status: dict | None = None
        self.hello: dict | None = None
        self._task = asyncio.create_task(self._read())
        self._next_id = 1

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY:
                sec, nanosec = struct.unpack("<II", msg.data[:8])
                image = cv2.imdecode(np.frombuffer(msg.data[8:], np.uint8), cv2.IMREAD_COLOR)
                self.frames.append((sec, nanosec, image))
            elif msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                kind = data["type"]
                if kind == "hello":
                    self.hello = data
                elif kind == "status":
                    self.status = data
                elif kind == "tracks":
                    self.tracks.append(data)
                elif kind == "reply":
                    self.replies.append(data)

    async def call(self, op: str, **fields) -> dict:
        request_id = self._next_id
        self._next_id += 1
        await self.ws.send_str(json.dumps({"op": op, "id": request_id, **fields}))
        assert await until(lambda: any(r["id"] == request_id for r in self.replies)), f"no reply to {op}"
        return next(r for r in self.replies if r["id"] == request_id)


async def until(condition, timeout: float = 20.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def test_pages_watch_point_stop_and_see_the_nodes_own_words(ros_context, executor):
    h = make_harness(ros_context, executor)
    tracker = h.node.get_fully_qualified_name()
    overlay = f"{tracker}/overlay"
    published: list = []

    async def camera(stop: asyncio.Event) -> None:
        k = 0
        while not stop.is_set():
            when = stamp(100 + k // 10, (k % 10) * 100_000_000)
            h.image_pub.publish(image_msg(scene(x=60 + k % 3), when))
            published.append(when)
            k += 1
            await asyncio.sleep(0.1)

    async def scenario() -> None:
        client = test_utils.TestClient(test_utils.TestServer(make_app(tracker, context=ros_context)))
        await client.start_server()
        stop_camera = asyncio.Event()
        feed = asyncio.create_task(camera(stop_camera))
        try:
            await asyncio.sleep(0.5)
            assert h.node.count_subscribers(overlay) == 0  # no page, no overlay drawn
            page = PageClient(await client.ws_connect("/ws"))
            other = PageClient(await client.ws_connect("/ws"))
            assert await until(lambda: page.frames and other.frames), "both pages get the overlay"
            assert h.node.count_subscribers(overlay) == 1  # one subscription serves every page
            assert page.hello == {"type": "hello", "tracker": tracker}
            sec, nanosec, image = page.frames[-1]
            assert image.shape == (120, 160, 3)
            assert any(s.sec == sec and s.nanosec == nanosec for s in published)

            # The box goes to the frame the page showed, named by its stamp.
            shown = {"sec": sec, "nanosec": nanosec}
            reply = await page.call("set_target", x=60, y=40, w=24, h=24, stamp=shown)
            assert reply["success"], reply
            target = reply["target_id"]
            assert reply["message"] == (f"tracking target {target} from the 160x120 frame stamped "
                                        f"{sec + nanosec / 1e9:.3f} s")
            assert not any(r["op"] == "set_target" for r in other.replies)  # a reply is for its page only
            seen = lambda p: any(t["id"] == target for m in p.tracks for t in m["tracks"])  # noqa: E731
            assert await until(lambda: seen(page) and seen(other))
            track = next(t for m in page.tracks for t in m["tracks"] if t["id"] == target)
            assert track["state"] in ("tracking", "lost") and track["age"] >= 1 and len(track["box"]) == 4

            # Refusals arrive in the node's own words.
            unknown = await page.call("set_target", x=60, y=40, w=24, h=24, stamp={"sec": 5, "nanosec": 0})
            assert not unknown["success"]
            assert unknown["message"].startswith("unknown stamp 5.000000000: not among the ")
            outside = await page.call("set_target", x=500, y=40, w=24, h=24, stamp=shown)
            assert not outside["success"] and "entirely outside the 160x120 frame" in outside["message"]
            malformed = await page.call("set_target", x="left", y=40, w=24, h=24, stamp=shown)
            assert malformed["message"] == "bad request: x must be a finite number, got 'left'"

            stopped = await page.call("stop_target", target_id=target)
            assert stopped["success"] and stopped["message"] == f"stopped target {target}"
            count = len(page.tracks)
            assert await until(lambda: len(page.tracks) > count + 2)
            assert all(t["id"] != target for t in page.tracks[-1]["tracks"])

            assert await until(lambda: page.status is not None and "latency_p50_ms" in page.status["values"])
            assert float(page.status["values"]["fps"]) > 0

            deactivated = await page.call("lifecycle", transition="deactivate")
            assert deactivated["success"] and deactivated["message"] == "deactivate: done"
            assert await until(lambda: page.status["values"]["state"] == "inactive")
            inactive = await page.call("set_target", x=60, y=40, w=24, h=24, stamp=shown)
            assert inactive["message"] == "the tracker node is inactive, not active"
            again = await page.call("lifecycle", transition="deactivate")
            assert not again["success"] and again["message"].startswith("deactivate: refused")
            assert (await page.call("lifecycle", transition="activate"))["success"]
            reset = await page.call("reset")
            assert reset["success"] and reset["message"].startswith("stopped 0 targets and forgot ")

            await page.ws.close()
            assert h.node.count_subscribers(overlay) == 1  # the other page still watches
            await other.ws.close()
            assert await until(lambda: h.node.count_subscribers(overlay) == 0, timeout=5)
        finally:
            stop_camera.set()
            await feed
            await client.close()

    try:
        with spinning(executor):
            asyncio.run(scenario())
    finally:
        h.close()


def test_a_missing_tracker_node_is_reported_not_waited_for(ros_context):
    async def scenario() -> None:
        app = make_app("/nobody/grm_tracker", context=ros_context)
        client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        try:
            page = PageClient(await client.ws_connect("/ws"))
            reply = await page.call("reset")
            assert reply["message"] == ("service /nobody/grm_tracker/reset is not available: is the tracker "
                                        "node /nobody/grm_tracker running?")
            unknown = await page.call("teleport")
            assert unknown["message"].startswith("bad request: unknown operation 'teleport'")
            index = await client.get("/")
            assert index.status == 200 and "operator.js" in await index.text()
            script = await client.get("/static/operator.js")
            assert script.status == 200 and "set_target" in await script.text()
        finally:
            await client.close()

    asyncio.run(scenario())


def test_loopback_hosts_and_a_relative_node_name(capsys):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.7") and not is_loopback("robot.local")
    with pytest.raises(SystemExit) as exit_info:
        main(["--node", "grm_tracker"])
    assert exit_info.value.code == 2
    assert "--node must be a fully qualified node name" in capsys.readouterr().err
