/// The viewer page: one self-contained HTML file (no build step, nothing fetched from
/// elsewhere) served at `/`. Its query string pre-fills the form (`prompt`, `chain`, `seed`,
/// `width`, `height`, `steps`, `frames`, `fps`) and `autostart=1` starts at once, which is how the
/// tests and scripts/viewer.sh drive it. `window.vidrdStats` exposes what was drawn (frames, a
/// hash of the canvas pixels) so a headless browser can check that video really plays.
enum ViewerPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vidrd viewer</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1em; background: #111; color: #ddd; }
  h1 { font-size: 18px; margin: 0 0 .5em; }
  .row { display: flex; gap: 1.5em; align-items: flex-start; flex-wrap: wrap; }
  form { display: grid; grid-template-columns: auto 18em; gap: .35em .6em; align-items: center; }
  input, textarea, button { background: #222; color: #eee; border: 1px solid #555; padding: .25em; font: inherit; }
  textarea { height: 3.5em; }
  button { cursor: pointer; padding: .3em .9em; }
  #video { width: 384px; height: 384px; image-rendering: pixelated; background: #000; border: 1px solid #444; }
  #timeline { width: 384px; height: 28px; background: #1b1b1b; border: 1px solid #444; display: block; margin-top: .4em; }
  progress { width: 384px; }
  #error { color: #ff7b7b; white-space: pre-wrap; min-height: 1.2em; }
  #strategies { max-width: 34em; font-size: 12px; }
  #strategies td { padding: 1px 6px; vertical-align: top; }
  code { color: #9cdcfe; }
</style>
</head>
<body>
<h1>vidrd viewer <span id="model"></span></h1>
<div class="row">
  <div>
    <canvas id="video" width="64" height="64"></canvas>
    <canvas id="timeline" width="384" height="28"></canvas>
    <div>clip being generated: <span id="genclip">–</span></div>
    <progress id="progress" max="1" value="0"></progress>
    <div id="stats">idle</div>
    <div id="error"></div>
  </div>
  <div>
    <form id="form" onsubmit="return false">
      <label for="prompt">prompt</label><textarea id="prompt">a red circle moving left on a blue background</textarea>
      <label for="chain">strategy chain</label><input id="chain" placeholder="daemon default">
      <label for="seed">seed</label><input id="seed" type="number" min="0" placeholder="random">
      <label for="width">width</label><input id="width" type="number" min="8" step="8" placeholder="default">
      <label for="height">height</label><input id="height" type="number" min="8" step="8" placeholder="default">
      <label for="steps">steps</label><input id="steps" type="number" min="1" placeholder="default">
      <label for="frames">frames/clip</label><input id="frames" type="number" min="1" placeholder="default">
      <label for="fps">fps</label><input id="fps" type="number" min="1" step="any" placeholder="default">
      <span></span><span><button id="start">Start</button> <button id="stop">Stop</button> <button id="restart">Restart</button></span>
    </form>
    <table id="strategies"></table>
  </div>
</div>
<script>
"use strict";
const $ = id => document.getElementById(id);
const stats = window.vidrdStats = { state: "connecting", run: 0, session: null, framesDrawn: 0, clips: 0, hash: 0,
  distinctHashes: 0, lastFrame: -1, error: "", width: 0, height: 0, fps: 0 };
const seen = new Set();
const video = $("video"), vctx = video.getContext("2d", { willReadFrequently: true });
const timeline = $("timeline"), tctx = timeline.getContext("2d");
let ws = null, run = 0, decoding = Promise.resolve(), frameTimes = [], seams = [], lastParams = null;
const fields = ["prompt", "chain", "seed", "width", "height", "steps", "frames", "fps"];

function showError(message) { stats.error = message; $("error").textContent = message; }

function params() {
  const p = { prompt: $("prompt").value };
  const chain = $("chain").value.trim();
  if (chain !== "") p.chain = chain === "none" ? "" : chain;
  for (const f of ["width", "height", "steps", "frames"]) if ($(f).value !== "") p[f] = Number($(f).value);
  if ($("fps").value !== "") p.fps = Number($("fps").value);
  if ($("seed").value !== "") {
    // JSON numbers are doubles in the page: a seed past 2^53 would silently change.
    const seed = Number($("seed").value);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error("seed must be a whole number from 0 to 2^53-1");
    p.seed = seed;
  }
  return p;
}

function startFromForm(p) {
  try { start(p ?? params()).catch(e => showError("cannot reach the gateway: " + e)); } catch (e) { showError(e.message); }
}

async function start(p) {
  showError("");
  // The gateway checks the request first (HTTP 400 names the bad field) so a typo is
  // reported here before any session is opened.
  const r = await fetch("/api/validate", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(p) });
  if (!r.ok) {
    let text = await r.text();
    try { text = JSON.parse(text).error.message; } catch (e) {}
    showError(text);
    return;
  }
  if (!ws || ws.readyState !== WebSocket.OPEN) { showError("not connected to the gateway; reload the page"); return; }
  lastParams = p;
  ws.send(JSON.stringify(Object.assign({ type: "start" }, p)));
}

function stop() { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" })); }
window.vidrdStart = () => startFromForm();
window.vidrdStop = stop;

function resetCounters() {
  stats.framesDrawn = 0; stats.clips = 0; stats.lastFrame = -1; stats.distinctHashes = 0;
  seen.clear(); frameTimes = []; seams = []; drawTimeline();
}

function hashCanvas() {
  const d = vctx.getImageData(0, 0, video.width, video.height).data;
  let h = 0x811c9dc5;
  for (let i = 0; i < d.length; i++) { h ^= d[i]; h = Math.imul(h, 0x01000193) >>> 0; }
  return h;
}

function drawFrame(buffer) {
  const view = new DataView(buffer);
  const frameNumber = Number(view.getBigUint64(0));
  const blob = new Blob([new Uint8Array(buffer, 12)], { type: "image/webp" });
  const myRun = run;
  // Decode in order: each frame waits for the previous one's draw.
  decoding = decoding.then(() => createImageBitmap(blob)).then(bitmap => {
    if (myRun !== run) return;
    vctx.drawImage(bitmap, 0, 0, video.width, video.height);
    bitmap.close();
    stats.framesDrawn++; stats.lastFrame = frameNumber;
    stats.hash = hashCanvas();
    if (seen.size < 10000) seen.add(stats.hash);
    stats.distinctHashes = seen.size;
    const now = performance.now();
    frameTimes.push(now);
    while (frameTimes.length > 0 && now - frameTimes[0] > 3000) frameTimes.shift();
    drawTimeline(); showStats();
  }).catch(e => showError("cannot decode frame " + frameNumber + ": " + e));
}

function showStats() {
  const rate = frameTimes.length > 1 ? (frameTimes.length - 1) * 1000 / (frameTimes[frameTimes.length - 1] - frameTimes[0]) : 0;
  $("stats").textContent = stats.state + " · session " + (stats.session ?? "–") + " · " + stats.width + "×" + stats.height +
    " @ " + stats.fps + " fps · " + rate.toFixed(1) + " frames/s · " + stats.framesDrawn + " frames · " + stats.clips + " clips";
}

// The last 128 frames; a tick at each seam (the first frame of a clip), labelled with its clip.
function drawTimeline() {
  const w = timeline.width, h = timeline.height, span = 128;
  const end = Math.max(stats.lastFrame + 1, span), begin = end - span, x = f => (f - begin) * w / span;
  tctx.fillStyle = "#1b1b1b"; tctx.fillRect(0, 0, w, h);
  if (stats.lastFrame >= 0) { tctx.fillStyle = "#3a6"; tctx.fillRect(0, h - 8, x(stats.lastFrame + 1), 8); }
  tctx.fillStyle = "#fc3"; tctx.font = "10px sans-serif";
  for (const s of seams) {
    if (s.frame < begin) continue;
    tctx.fillRect(x(s.frame), 0, 2, h);
    tctx.fillText(String(s.clip), x(s.frame) + 3, 10);
  }
}

function onEvent(e) {
  if (e.run !== undefined && e.run !== run && e.type !== "opened") {
    if (e.run < run) return;
  }
  switch (e.type) {
    case "opened":
      run = e.run; resetCounters();
      stats.state = "playing"; stats.run = e.run; stats.session = e.session; stats.width = e.width; stats.height = e.height; stats.fps = e.fps;
      video.width = e.width; video.height = e.height;
      if ($("seed").value === "") $("seed").placeholder = "random (this run: " + e.seed + ")";
      $("chain").placeholder = e.chain === "" ? "none" : e.chain;
      showStats(); break;
    case "clip":
      seams.push({ frame: e.firstFrame, clip: e.clip }); if (seams.length > 64) seams.shift();
      $("genclip").textContent = String(e.clip); $("progress").value = 0; break;
    case "progress":
      if (e.phase === "denoise") { $("genclip").textContent = String(e.clip); $("progress").max = e.total; $("progress").value = e.step; }
      break;
    case "clipEnd":
      stats.clips++; $("progress").value = $("progress").max; showStats(); break;
    case "stopped": case "ended":
      stats.state = e.type; showStats(); break;
    case "error":
      stats.state = "error"; showError(e.message); showStats(); break;
  }
}

function connect() {
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    stats.state = "ready"; showStats();
    if (new URLSearchParams(location.search).get("autostart") === "1") startFromForm();
  };
  ws.onmessage = m => { if (typeof m.data === "string") onEvent(JSON.parse(m.data)); else drawFrame(m.data); };
  ws.onclose = () => { stats.state = "disconnected"; showStats(); if (!stats.error) showError("the gateway closed the connection; reload the page"); };
}

async function loadStrategies() {
  try {
    const r = await fetch("/api/strategies");
    if (!r.ok) { showError("strategies: " + (await r.text())); return; }
    const d = await r.json();
    $("model").textContent = "· " + d.model;
    if ($("chain").value === "") $("chain").placeholder = d.defaultChain || "none";
    const table = $("strategies");
    table.innerHTML = "<tr><td colspan=3>strategies (click to append to the chain; default <code></code>)</td></tr>";
    table.querySelector("code").textContent = d.defaultChain;
    for (const s of d.strategies) {
      const row = table.insertRow(), name = row.insertCell(), ps = row.insertCell(), summary = row.insertCell();
      const b = document.createElement("button"); b.type = "button"; b.textContent = s.name; name.appendChild(b);
      ps.textContent = s.params.map(p => p.name + "=" + p.default + (p.min !== undefined || p.max !== undefined ? " [" + (p.min ?? "") + "…" + (p.max ?? "") + "]" : "")).join(" ");
      summary.textContent = s.summary;
      b.onclick = () => {
        const spec = [s.name].concat(s.params.map(p => p.name + "=" + p.default)).join(":");
        $("chain").value = $("chain").value.trim() === "" ? spec : $("chain").value.trim() + "," + spec;
      };
    }
    $("width").max = d.limits.maxWidth; $("height").max = d.limits.maxHeight; $("steps").max = d.limits.maxSteps;
  } catch (e) { showError("cannot load strategies: " + e); }
}

const q = new URLSearchParams(location.search);
for (const f of fields) if (q.has(f)) $(f).value = q.get(f);
$("start").onclick = () => startFromForm();
$("stop").onclick = stop;
$("restart").onclick = () => startFromForm(lastParams);
loadStrategies();
connect();
</script>
</body>
</html>
"""#
}
