"""The preview's web page: the stream full-window, FPS and people, a source picker,
full screen (served at ``/`` by ``stages.preview``)."""

PAGE = """<!doctype html>
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
  #hud { left: 1.5vw; font-size: clamp(18px, 2.6vw, 48px); font-weight: 600;
         font-variant-numeric: tabular-nums; text-shadow: 0 0 4px #000; }
  #hud .unit { font-weight: 400; opacity: .75; }
  #controls { right: 1.5vw; display: flex; gap: .5em; transition: opacity .4s; }
  :fullscreen #controls { opacity: 0; }
  :fullscreen #controls:hover { opacity: 1; }
  select, button { font: inherit; font-size: clamp(14px, 1.4vw, 26px); color: #f2f2f2;
                   background: #222; border: 1px solid #555; border-radius: .3em;
                   padding: .2em .6em; cursor: pointer; }
  #offline { color: #ff7060; }
</style>
</head>
<body>
<img id="view" alt="live pose stream">
<div id="hud" class="panel">
  <span id="fps">&ndash;</span> <span class="unit">fps</span> &middot;
  <span id="people">&ndash;</span> <span id="people-unit" class="unit">people</span>
  <span id="offline" hidden>&middot; offline</span>
</div>
<div id="controls" class="panel">
  <select id="source" hidden title="source"></select>
  <button id="fullscreen" type="button" title="full screen (f)">Full screen</button>
</div>
<script>
"use strict";
const source = new URLSearchParams(location.search).get("source");
const view = document.getElementById("view");
const picker = document.getElementById("source");
const offline = document.getElementById("offline");

function connect() {
  const query = source ? "source=" + encodeURIComponent(source) + "&" : "";
  view.src = "/stream.mjpg?" + query + "t=" + Date.now();
}
view.addEventListener("error", () => setTimeout(connect, 1000));

function showSources(list, current) {
  const names = list.map(s => s.source);
  if (names.join("\\n") !== Array.from(picker.options, o => o.value).join("\\n")) {
    picker.replaceChildren(...names.map(n => new Option(n, n)));
  }
  picker.value = current;
  picker.hidden = names.length < 2;
}
picker.addEventListener("change", () => {
  location.search = "?source=" + encodeURIComponent(picker.value);
});

async function poll() {
  try {
    const reply = await fetch("/stats.json", {cache: "no-store"});
    const stats = await reply.json();
    const row = stats.sources.find(s => s.source === source) || stats.sources[0];
    if (row) {
      document.getElementById("fps").textContent = row.fps.toFixed(1);
      document.getElementById("people").textContent = row.people;
      document.getElementById("people-unit").textContent = row.people === 1 ? "person" : "people";
      showSources(stats.sources, row.source);
    }
    if (!offline.hidden) { offline.hidden = true; connect(); }
  } catch (e) {
    offline.hidden = false;
  }
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen();
  else document.documentElement.requestFullscreen();
}
document.getElementById("fullscreen").addEventListener("click", toggleFullscreen);
view.addEventListener("dblclick", toggleFullscreen);
document.addEventListener("keydown", e => { if (e.key === "f") toggleFullscreen(); });

connect();
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"""
