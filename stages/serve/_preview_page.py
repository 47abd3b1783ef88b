"""The preview's web page (served at ``/`` by ``stages.serve.preview``).

The stream fills the window (letterboxed, black); an overlay shows FPS,
latency and people; a source picker (two sources or more) and a full-screen
button sit in a top corner. Query options:

- ``source=NAME``: the source to show (default the first).
- ``kiosk=1``: no controls; the first click, tap or key anywhere makes the
  page full screen (browsers allow that only from a user's gesture), and
  again after the visitor left full screen; the cursor hides after
  ``IDLE_MS`` without moving.
- ``overlay=tl|tr|bl|br|off``: the overlay's corner, or none. A click on the
  overlay moves it to the next corner (``o`` also cycles through ``off``);
  the choice is remembered in the browser (localStorage) for pages opened
  without ``overlay=``.
- ``img=1``: show the stream through a plain ``<img>`` (the fallback).

Until the first frame is shown, the picture stays hidden and a placeholder
says the page is waiting for the camera (for a run of files, for the first
frame), so no broken-image icon or alternative text shows meanwhile; with
``img=1`` the picture is hidden again while its stream is broken.

Latency is capture to display, the p50 of the last ``WINDOW_MS``: the page
reads ``/stream.mjpg`` with ``fetch`` (each part's ``X-Capture-Time``),
decodes each JPEG off screen, swaps it into the picture and stamps the next
animation frame, when the browser paints it; older parts that arrive while
one is decoding are skipped. The server's clock may differ from the
browser's: each ``/stats.json`` poll gives the server's time, and the offset
is taken NTP-style (the server's time minus the midpoint of request and
reply) from the poll with the shortest round trip of the last 16. Without
``fetch`` streams (or with ``img=1``) the page shows the server's capture to
sent figure instead. For files (no capture clock) the figure runs from
decode, and the overlay says "processing".
"""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>posestream live</title>
<style>
  html, body { margin: 0; height: 100%; background: #000; color: #f2f2f2; overflow: hidden;
               font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
  #view { position: fixed; inset: 0; width: 100vw; height: 100vh; object-fit: contain;
          background: #000; }
  .panel { position: fixed; top: 1.5vh; padding: .35em .7em; border-radius: .4em;
           background: rgba(0, 0, 0, .6); }
  #hud { left: 1.5vw; font-size: clamp(18px, 2.6vw, 48px); font-weight: 600; cursor: pointer;
         font-variant-numeric: tabular-nums; text-shadow: 0 0 4px #000; user-select: none; }
  #hud .unit { font-weight: 400; opacity: .75; }
  [data-overlay="tr"] #hud, [data-overlay="br"] #hud { left: auto; right: 1.5vw; }
  [data-overlay="bl"] #hud, [data-overlay="br"] #hud { top: auto; bottom: 1.5vh; }
  [data-overlay="off"] #hud { display: none; }
  #controls { right: 1.5vw; display: flex; gap: .5em; transition: opacity .4s; }
  [data-overlay="tr"] #controls { right: auto; left: 1.5vw; }
  #controls[hidden], .kiosk #controls { display: none; }
  :fullscreen #controls { opacity: 0; }
  :fullscreen #controls:hover { opacity: 1; }
  select, button { font: inherit; font-size: clamp(14px, 1.4vw, 26px); color: #f2f2f2;
                   background: #222; border: 1px solid #555; border-radius: .3em;
                   padding: .2em .6em; cursor: pointer; }
  .kiosk.idle, .kiosk.idle * { cursor: none; }
  #offline { color: #ff7060; }
  #waiting { position: fixed; inset: 0; display: flex; flex-direction: column; gap: .6em;
             align-items: center; justify-content: center; text-align: center;
             font-size: clamp(18px, 2.6vw, 42px); color: #bdbdbd; }
  #waiting[hidden] { display: none; }
  #waiting .note { font-size: .55em; opacity: .7; }
  #waiting .dots::after { content: ""; animation: dots 1.5s steps(4, end) infinite; }
  @keyframes dots { 0% { content: ""; } 25% { content: "."; } 50% { content: ".."; }
                    75% { content: "..."; } }
</style>
</head>
<body>
<img id="view" alt="live pose stream" hidden>
<div id="waiting" role="status">
  <div><span id="waiting-text">Waiting for the camera</span><span class="dots"></span></div>
  <div class="note">The picture appears with the first processed frame.</div>
</div>
<div id="hud" class="panel" title="click to move">
  <span id="fps">&ndash;</span> <span class="unit">fps</span> &middot;
  <span id="latency-box"><span id="latency">&ndash;</span>
    <span id="latency-unit" class="unit">ms latency</span></span> &middot;
  <span id="people">&ndash;</span> <span id="people-unit" class="unit">people</span>
  <span id="offline" hidden>&middot; offline</span>
</div>
<div id="controls" class="panel">
  <select id="source" hidden title="source"></select>
  <button id="fullscreen" type="button" title="full screen (f)">Full screen</button>
</div>
<script>
"use strict";
const WINDOW_MS = 5000, IDLE_MS = 3000, CORNERS = ["tl", "tr", "br", "bl"];
const params = new URLSearchParams(location.search);
const source = params.get("source");
const kiosk = ["1", "true", "yes", "on"].includes(params.get("kiosk"));
const streaming = params.get("img") !== "1" && typeof ReadableStream === "function"
  && "body" in Response.prototype;
const $ = id => document.getElementById(id);
const view = $("view"), hud = $("hud"), picker = $("source"), offline = $("offline");
const waiting = $("waiting");
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

function streamUrl() {
  const query = source ? "source=" + encodeURIComponent(source) + "&" : "";
  return "/stream.mjpg?" + query + "t=" + Date.now();
}

// -- clocks: the server's time minus the browser's, from the quickest recent poll
const clock = {samples: [], offset: null};
function noteClock(sent, received, serverSeconds) {
  if (typeof serverSeconds !== "number") return;
  clock.samples.push({rtt: received - sent, offset: serverSeconds * 1000 - (sent + received) / 2});
  if (clock.samples.length > 16) clock.samples.shift();
  clock.offset = clock.samples.reduce((a, b) => (b.rtt < a.rtt ? b : a)).offset;
}

// -- latency: capture to display, p50 of the last WINDOW_MS
const latencies = [];
function noteDisplayed(captured) {
  if (!(captured > 0) || clock.offset === null) return;
  const now = Date.now();
  latencies.push([now, now + clock.offset - captured * 1000]);
  forgetOld();
}
function forgetOld() {
  const since = Date.now() - WINDOW_MS;
  while (latencies.length && latencies[0][0] < since) latencies.shift();
}
function latencyP50() {
  forgetOld();
  if (!latencies.length) return null;
  const sorted = latencies.map(l => l[1]).sort((a, b) => a - b);
  return sorted[(sorted.length - 1) >> 1];
}

// -- the stream, read part by part (multipart/x-mixed-replace)
function headEnd(bytes) {
  const limit = Math.min(bytes.length, 8192);
  for (let i = 3; i < limit; i++) {
    if (bytes[i] === 10 && bytes[i - 1] === 13 && bytes[i - 2] === 10 && bytes[i - 3] === 13) {
      return i + 1;
    }
  }
  if (bytes.length >= 8192) throw new Error("no part headers in the stream");
  return -1;
}
function takePart(buffer) {
  const end = headEnd(buffer);
  if (end < 0) return null;
  const headers = {};
  for (const line of new TextDecoder("latin1").decode(buffer.subarray(0, end)).split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = parseInt(headers["content-length"], 10);
  if (!(length >= 0)) throw new Error("a part without Content-Length");
  if (buffer.length < end + length) return null;
  return {jpeg: buffer.slice(end, end + length), size: end + length,
          captured: parseFloat(headers["x-capture-time"])};
}
function join(a, b) {
  if (!a.length) return b;
  const both = new Uint8Array(a.length + b.length);
  both.set(a);
  both.set(b, a.length);
  return both;
}

let newest = null, drawing = false, shownUrl = null;
function show(part) {
  newest = part;
  if (!drawing) draw();
}
async function draw() {
  drawing = true;
  while (newest) {
    const part = newest;
    newest = null;
    const url = URL.createObjectURL(new Blob([part.jpeg], {type: "image/jpeg"}));
    const next = new Image();
    next.src = url;
    try {
      await next.decode();
    } catch (e) {
      URL.revokeObjectURL(url);
      continue;
    }
    view.src = url;  // decoded already: painted with the next frame
    pictureShown(true);
    if (shownUrl) URL.revokeObjectURL(shownUrl);
    shownUrl = url;
    await new Promise(resolve => requestAnimationFrame(resolve));
    noteDisplayed(part.captured);
  }
  drawing = false;
}

async function readStream() {
  const reply = await fetch(streamUrl(), {cache: "no-store"});
  if (!reply.ok || !reply.body) throw new Error(String(reply.status));
  const reader = reply.body.getReader();
  let buffer = new Uint8Array(0);
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer = join(buffer, value);
    for (let part; (part = takePart(buffer));) {
      buffer = buffer.subarray(part.size);
      show(part);
    }
  }
}
async function keepStreaming() {
  for (;;) {
    let wait = 1000;
    try {
      await readStream();
    } catch (e) {  // the server went away, is closing, or busy (503: as it asks, in 5 s)
      if (e.message === "503") wait = 5000;
    }
    await sleep(wait);
  }
}
function connectImg() { view.src = streamUrl(); }

// -- the picture, or the placeholder until there is one to show (never a broken image)
function pictureShown(shown) {
  view.hidden = !shown;
  waiting.hidden = shown;
}

// -- figures
function showSources(list, current) {
  const names = list.map(s => s.source);
  if (names.join("\n") !== Array.from(picker.options, o => o.value).join("\n")) {
    picker.replaceChildren(...names.map(n => new Option(n, n)));
  }
  picker.value = current;
  picker.hidden = names.length < 2;
}
picker.addEventListener("change", () => {
  const next = new URLSearchParams(location.search);
  next.set("source", picker.value);
  location.search = "?" + next;
});

function showFigures(row, stats) {
  $("fps").textContent = row.fps.toFixed(1);
  $("people").textContent = row.people;
  $("people-unit").textContent = row.people === 1 ? "person" : "people";
  const latency = streaming ? latencyP50() : row.sent_latency_ms;
  $("latency").textContent = latency === null || latency === undefined
    ? "\u2013" : Math.max(0, Math.round(latency));
  const files = stats.clock === "decode";
  $("latency-unit").textContent = files ? "ms processing" : "ms latency";
  $("latency-box").title = (files ? "decode" : "capture")
    + (streaming ? " to display" : " to sent") + ", median of the last 5 s";
}

async function poll() {
  try {
    const sent = Date.now();
    const reply = await fetch("/stats.json", {cache: "no-store"});
    const received = Date.now();
    const stats = await reply.json();
    noteClock(sent, received, stats.time);
    $("waiting-text").textContent = stats.clock === "decode"
      ? "Waiting for the first frame" : "Waiting for the camera";
    const row = stats.sources.find(s => s.source === source) || stats.sources[0];
    if (row) {
      showFigures(row, stats);
      showSources(stats.sources, row.source);
    }
    if (!offline.hidden) {
      offline.hidden = true;
      if (!streaming) connectImg();
    }
  } catch (e) {
    offline.hidden = false;
  }
}

// -- the overlay's corner
function storedCorner() {
  try { return localStorage.getItem("posestream.overlay"); } catch (e) { return null; }
}
let corner = params.get("overlay") || storedCorner() || "tl";
if (![...CORNERS, "off"].includes(corner)) corner = "tl";
function place(next) {
  corner = next;
  document.body.dataset.overlay = corner;
  try { localStorage.setItem("posestream.overlay", corner); } catch (e) { /* private mode */ }
}
document.body.dataset.overlay = corner;
hud.addEventListener("click", () => place(CORNERS[(CORNERS.indexOf(corner) + 1) % CORNERS.length]));

// -- full screen and kiosk
function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen();
  else document.documentElement.requestFullscreen().catch(() => {});
}
function enterFullscreen() {
  if (!document.fullscreenElement) document.documentElement.requestFullscreen().catch(() => {});
}
let idleTimer = null;
function awake() {
  document.body.classList.remove("idle");
  clearTimeout(idleTimer);
  idleTimer = setTimeout(() => document.body.classList.add("idle"), IDLE_MS);
}
$("fullscreen").addEventListener("click", toggleFullscreen);
view.addEventListener("dblclick", toggleFullscreen);
document.addEventListener("keydown", e => {
  if (e.key === "o") {
    const cycle = [...CORNERS, "off"];
    place(cycle[(cycle.indexOf(corner) + 1) % cycle.length]);
  } else if (e.key === "f" && !kiosk) {
    toggleFullscreen();
  }
});
if (kiosk) {
  document.body.classList.add("kiosk");
  $("controls").hidden = true;
  for (const kind of ["pointerdown", "pointerup", "keydown"]) {
    document.addEventListener(kind, enterFullscreen);  // whichever the browser counts as a gesture
  }
  document.addEventListener("pointermove", awake);
  awake();
}

if (streaming) keepStreaming();
else {
  view.addEventListener("load", () => pictureShown(true));  // the stream's first frame
  view.addEventListener("error", () => {
    pictureShown(false);
    setTimeout(connectImg, 1000);
  });
  connectImg();
}
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"""
