// The operator page: shows the tracker's overlay, turns a dragged box into ~/set_target on the frame the
// person saw, a click on a track into ~/stop_target, and shows the node's replies in its own words.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("view");
const ctx = canvas.getContext("2d");
const MIN_BOX = 4; // px of the image: anything smaller is a click, not a box

const state = {
  socket: null,
  shown: null, // {stamp: {sec, nanosec}, bitmap}: the frame on screen
  held: null, // the newest frame that arrived while a box was being drawn
  decoding: Promise.resolve(), // frames are decoded one after the other, so they show in order
  frames: 0,
  drag: null, // {x0, y0, x1, y1} in image pixels while drawing
  tracks: [],
  nextId: 1,
};
window.operator = state; // for the browser test and for curious people with a console

const stampText = (s) => `${s.sec}.${String(s.nanosec).padStart(9, "0")}`;

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => setBadge($("connection"), "ok", "connected");
  ws.onclose = () => {
    setBadge($("connection"), "error", "disconnected: retrying");
    setTimeout(connect, 1000);
  };
  ws.onmessage = (event) => {
    if (typeof event.data === "string") onMessage(JSON.parse(event.data));
    else state.decoding = state.decoding.then(() => onFrame(event.data));
  };
  state.socket = ws;
}

function setBadge(element, level, text) {
  element.className = `badge ${level}`;
  element.textContent = text;
}

async function onFrame(buffer) {
  const header = new DataView(buffer, 0, 8);
  const stamp = { sec: header.getUint32(0, true), nanosec: header.getUint32(4, true) };
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([buffer.slice(8)], { type: "image/jpeg" }));
  } catch (err) {
    return; // a frame that does not decode is skipped; the next one replaces it anyway
  }
  const frame = { stamp, bitmap };
  if (state.drag) { // what the person is drawing on stays on screen
    if (state.held) state.held.bitmap.close();
    state.held = frame;
  } else {
    show(frame);
  }
}

function show(frame) {
  if (state.shown) state.shown.bitmap.close();
  state.shown = frame;
  if (canvas.width !== frame.bitmap.width || canvas.height !== frame.bitmap.height) {
    canvas.width = frame.bitmap.width;
    canvas.height = frame.bitmap.height;
  }
  state.frames += 1;
  canvas.dataset.frames = String(state.frames);
  canvas.dataset.stamp = stampText(frame.stamp);
  $("frame-info").textContent = `${canvas.width}x${canvas.height}, frame stamped ${stampText(frame.stamp)} s`;
  redraw();
}

function redraw() {
  if (state.shown) ctx.drawImage(state.shown.bitmap, 0, 0);
  const d = state.drag;
  if (!d) return;
  ctx.save();
  ctx.strokeStyle = "#ffd43b";
  ctx.lineWidth = Math.max(1, canvas.width / 400);
  ctx.setLineDash([6, 4]);
  ctx.strokeRect(Math.min(d.x0, d.x1), Math.min(d.y0, d.y1), Math.abs(d.x1 - d.x0), Math.abs(d.y1 - d.y0));
  ctx.restore();
}

function imagePoint(event) {
  const rect = canvas.getBoundingClientRect();
  const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
  return {
    x: clamp((event.clientX - rect.left) * canvas.width / rect.width, canvas.width),
    y: clamp((event.clientY - rect.top) * canvas.height / rect.height, canvas.height),
  };
}

canvas.addEventListener("pointerdown", (event) => {
  if (!state.shown || event.button !== 0) return;
  canvas.setPointerCapture(event.pointerId);
  const p = imagePoint(event);
  state.drag = { x0: p.x, y0: p.y, x1: p.x, y1: p.y };
});

canvas.addEventListener("pointermove", (event) => {
  if (!state.drag) return;
  const p = imagePoint(event);
  state.drag.x1 = p.x;
  state.drag.y1 = p.y;
  redraw();
});

canvas.addEventListener("pointerup", () => {
  const d = state.drag;
  if (!d) return;
  state.drag = null;
  const box = { x: Math.min(d.x0, d.x1), y: Math.min(d.y0, d.y1), w: Math.abs(d.x1 - d.x0), h: Math.abs(d.y1 - d.y0) };
  if (box.w >= MIN_BOX && box.h >= MIN_BOX) {
    const r = (v) => Math.round(v * 100) / 100;
    send("set_target", { x: r(box.x), y: r(box.y), w: r(box.w), h: r(box.h), stamp: state.shown.stamp });
  } else {
    stopAt(d.x0, d.y0);
  }
  if (state.held) {
    show(state.held);
    state.held = null;
  } else {
    redraw();
  }
});

function stopAt(x, y) {
  const hits = state.tracks.filter((t) => {
    const [bx, by, bw, bh] = t.box;
    return x >= bx && x <= bx + bw && y >= by && y <= by + bh;
  });
  if (!hits.length) {
    addLog({ op: "click", success: false, message: "no track there: drag to draw a box around a target" });
    return;
  }
  hits.sort((a, b) => a.box[2] * a.box[3] - b.box[2] * b.box[3]); // the innermost box
  send("stop_target", { target_id: hits[0].id });
}

function send(op, fields) {
  if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
    addLog({ op, success: false, message: "not connected to the operator server" });
    return;
  }
  state.socket.send(JSON.stringify({ op, id: state.nextId++, ...fields }));
}

function onMessage(msg) {
  if (msg.type === "hello") $("tracker-name").textContent = msg.tracker;
  else if (msg.type === "tracks") setTracks(msg.tracks);
  else if (msg.type === "status") showStatus(msg);
  else if (msg.type === "reply") addLog(msg);
}

function setTracks(tracks) {
  state.tracks = tracks;
  const body = $("targets").tBodies[0];
  body.replaceChildren();
  if (!tracks.length) {
    const row = body.insertRow();
    const cell = row.insertCell();
    cell.colSpan = 6;
    cell.className = "small";
    cell.textContent = "no targets: drag a box on the image";
    return;
  }
  for (const t of tracks) {
    const row = body.insertRow();
    row.className = t.state;
    row.dataset.id = String(t.id);
    row.dataset.state = t.state;
    const cells = [`#${t.id}`, t.label || "–", t.state, t.confidence.toFixed(2), String(t.age)];
    cells.forEach((text, i) => {
      const cell = row.insertCell();
      cell.textContent = text;
      if (i === 2) cell.className = "state";
      if (i >= 3) cell.className = "num";
    });
    const stop = document.createElement("button");
    stop.type = "button";
    stop.textContent = "stop";
    stop.className = "stop";
    stop.addEventListener("click", () => send("stop_target", { target_id: t.id }));
    row.insertCell().append(stop);
  }
}

const LEVELS = ["ok", "warn", "error", "error"]; // diagnostic_msgs levels OK, WARN, ERROR, STALE

function showStatus(msg) {
  const v = msg.values;
  const level = LEVELS[msg.level] || "warn";
  setBadge($("node-state"), level, v.state || "unknown");
  $("node-fps").textContent = v.fps ?? "–";
  $("node-latency").textContent = `${v.latency_p50_ms ?? "n/a"} / ${v.latency_p99_ms ?? "n/a"} ms`;
  $("node-dropped").textContent = v.frames_dropped ?? "–";
  const message = $("node-message");
  message.className = `message ${level}`;
  message.textContent = msg.message; // the node's own words
  if (v.state !== "active" && state.tracks.length) setTracks([]); // no tracks come from an idle node
}

function addLog(msg) {
  const item = document.createElement("li");
  item.className = msg.success ? "succeeded" : "failed";
  item.dataset.op = msg.op;
  item.textContent = `${new Date().toLocaleTimeString()} ${msg.op}: ${msg.message}`;
  const log = $("log");
  log.prepend(item);
  while (log.children.length > 50) log.lastChild.remove();
}

$("reset").addEventListener("click", () => send("reset", {}));
$("stop-all").addEventListener("click", () => send("stop_target", { target_id: 0 }));
for (const button of $("lifecycle").querySelectorAll("button")) {
  button.addEventListener("click", () => send("lifecycle", { transition: button.dataset.transition }));
}
setTracks([]);
connect();
