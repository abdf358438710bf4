// The live playground's page: settings -> a session on the server (POST /api/playground), play = a stream of
// server-sent frames (GET .../stream, one epoch each), pause = closing it, step = POST .../step then GET .../frame.
// A structural change (anything but the learning rate) deletes the session and makes a new one, as Playground
// resets its network. Plain JavaScript, no build step; compare/web/playground_routes.py is the API.
"use strict";

const ORANGE = [245, 147, 34], GREY = [232, 234, 235], BLUE = [8, 119, 189];
const DOMAIN = 6;
const DATASETS = {classification: ["circles", "xor", "gaussian", "spiral"], regression: ["plane", "multi-gaussian"]};
const FEATURES = [["x1", "X\u2081", (a, b) => a], ["x2", "X\u2082", (a, b) => b], ["x1_squared", "X\u2081\u00b2", (a, b) => a * a],
  ["x2_squared", "X\u2082\u00b2", (a, b) => b * b], ["x1_times_x2", "X\u2081X\u2082", (a, b) => a * b],
  ["sin_x1", "sin(X\u2081)", (a, b) => Math.sin(a)], ["sin_x2", "sin(X\u2082)", (a, b) => Math.sin(b)]];
const LEARNING_RATES = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const REG_RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const MAX_LAYERS = 6, MAX_NEURONS = 8;
const SIDES = ["scratch", "torch"];

const settings = {dataset: "circles", noise: 0, train_ratio: 0.5, batch_size: 10, features: ["x1", "x2"],
  hidden: [4, 2], activation: "tanh", lr: 0.03, regularization: "none", reg_rate: 0, problem: "classification",
  seed: 0, dtype: "float64"};
const page = {id: null, source: null, playing: false, generation: 0, points: null, curve: [], last: null,
  layout: null, busy: Promise.resolve()};
window.playground = page;  // for the browser test and the curious: page.last is the latest frame

const $ = (id) => document.getElementById(id);

function colour(v) {  // -1 orange, 0 grey, 1 blue, as Playground
  v = Math.max(-1, Math.min(1, v));
  const [a, b, t] = v < 0 ? [GREY, ORANGE, -v] : [GREY, BLUE, v];
  return a.map((c, i) => Math.round(c + (b[i] - c) * t));
}
const css = (v) => `rgb(${colour(v).join(",")})`;

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(method, path, body) {
  const response = await fetch(path, {method, headers: body ? {"Content-Type": "application/json"} : {},
    body: body ? JSON.stringify(body) : undefined});
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status}: ${answer.detail || response.statusText}`);
  return answer;
}

// ---- pictures ---------------------------------------------------------------------------------------------

function bytesOf(b64) {
  const text = atob(b64), out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

// A map of n x n values (row 0 at the bottom) into a canvas of n x n pixels, drawn scaled by CSS.
function paint(canvas, values, n, discretize = false) {
  if (canvas.width !== n) { canvas.width = n; canvas.height = n; }
  const ctx = canvas.getContext("2d"), image = ctx.createImageData(n, n);
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < n; col++) {
      let v = values[row * n + col];
      if (discretize) v = v > 0 ? 1 : v < 0 ? -1 : 0;
      const [r, g, b] = colour(v), k = ((n - 1 - row) * n + col) * 4;  // top row of the canvas is x2 = +6
      image.data[k] = r; image.data[k + 1] = g; image.data[k + 2] = b; image.data[k + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
}

function fromBytes(b64) { return Array.from(bytesOf(b64), (q) => q / 127.5 - 1); }

function drawPoints(canvas, points, test) {
  const ctx = canvas.getContext("2d"), scale = canvas.width / (2 * DOMAIN);
  for (const [x1, x2, label] of points) {
    const value = settings.problem === "classification" ? label * 2 - 1 : label;
    ctx.beginPath();
    ctx.arc((x1 + DOMAIN) * scale, (DOMAIN - x2) * scale, 3.2 * canvas.width / 200, 0, 2 * Math.PI);
    ctx.fillStyle = css(value);
    ctx.fill();
    ctx.lineWidth = 1;
    ctx.strokeStyle = test ? "#000" : "#fff";
    ctx.stroke();
  }
}

function drawHeatmap(side, frame) {
  const canvas = document.querySelector(`#${side} canvas.heatmap`), n = frame.resolution;
  const values = fromBytes(frame.pictures[side].output);
  const small = document.createElement("canvas");
  paint(small, values, n, $("discretize").checked);
  canvas.width = 400; canvas.height = 400;  // crisp points on a smoothly scaled map
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = !$("discretize").checked;
  ctx.drawImage(small, 0, 0, 400, 400);
  if (page.points) {
    drawPoints(canvas, page.points.train, false);
    if ($("show-test").checked) drawPoints(canvas, page.points.test, true);
  }
}

function drawCurve(side) {
  const canvas = document.querySelector(`#${side} canvas.curve`), ctx = canvas.getContext("2d");
  const w = canvas.width = 400, h = canvas.height = 88;
  ctx.clearRect(0, 0, w, h);
  const points = page.curve.filter((p) => Number.isFinite(p[`${side}_train_loss`]));
  if (points.length < 2) return;
  const top = Math.max(...points.map((p) => Math.max(p[`${side}_train_loss`], p[`${side}_test_loss`]))) || 1;
  const first = points[0].epoch, span = Math.max(1, points[points.length - 1].epoch - first);
  for (const [key, stroke] of [["train_loss", "#999"], ["test_loss", "#000"]]) {
    ctx.beginPath();
    points.forEach((p, i) => {
      const x = (p.epoch - first) / span * (w - 2) + 1, y = h - 2 - (p[`${side}_${key}`] / top) * (h - 6);
      i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    });
    ctx.strokeStyle = stroke; ctx.lineWidth = 2; ctx.stroke();
  }
}

// ---- the network diagram ------------------------------------------------------------------------------------

const NODE_W = 57, NODE_H = 29, GAP_Y = 36;

function layoutNetwork() {
  const nodes = $("nodes"), diagram = $("diagram");
  nodes.innerHTML = "";
  const width = diagram.clientWidth, layers = settings.hidden.length;
  const outputs = settings.problem === "classification" ? 2 : 1;
  const columnX = (k) => 70 + k * (width - 70 - 40) / (layers + 1);  // k = 0: features, layers + 1: output
  const layout = {columns: [], width};
  // the features: all seven, the chosen ones on
  const featureNodes = FEATURES.map(([name, label, f], i) => {
    const node = document.createElement("div");
    node.className = "node feature" + (settings.features.includes(name) ? " on" : "");
    node.style.left = `${columnX(0) - 15}px`; node.style.top = `${40 + i * GAP_Y}px`;
    node.dataset.feature = name;
    const canvas = document.createElement("canvas");
    node.append(canvas);
    const tag = document.createElement("span"); tag.className = "name"; tag.textContent = label; node.append(tag);
    drawFeature(canvas, f);
    node.addEventListener("click", () => toggleFeature(name));
    nodes.append(node);
    return {name, x: columnX(0) + 14, y: 40 + i * GAP_Y + NODE_H / 2, on: settings.features.includes(name)};
  });
  layout.columns.push(featureNodes.filter((n) => n.on));
  settings.hidden.forEach((size, k) => {
    const x = columnX(k + 1) - NODE_W / 2, column = [];
    const buttons = document.createElement("div");
    buttons.className = "neuron-buttons";
    buttons.style.left = `${x + NODE_W / 2 - 30}px`; buttons.style.top = "0px"; buttons.style.width = "60px";
    buttons.innerHTML = `<div><button id="add-neuron-${k}" title="Add a neuron">+</button>` +
      `<button id="remove-neuron-${k}" title="Remove a neuron">&minus;</button></div>` +
      `<span>${size} neuron${size === 1 ? "" : "s"}</span>`;
    buttons.style.pointerEvents = "auto";
    nodes.append(buttons);
    $(`add-neuron-${k}`).disabled = size >= MAX_NEURONS;
    $(`remove-neuron-${k}`).disabled = size <= 1;
    $(`add-neuron-${k}`).onclick = () => change(() => settings.hidden[k]++);
    $(`remove-neuron-${k}`).onclick = () => change(() => settings.hidden[k]--);
    for (let j = 0; j < size; j++) {
      const node = document.createElement("div"), y = 40 + j * GAP_Y;
      node.className = "node neuron"; node.id = `neuron-${k}-${j}`;
      node.style.left = `${x}px`; node.style.top = `${y}px`;
      node.innerHTML = '<canvas class="scratch"></canvas><canvas class="torch"></canvas>';
      node.addEventListener("mousemove", (e) => showNodeTip(e, k, j));
      node.addEventListener("mouseleave", hideTip);
      nodes.append(node);
      column.push({x: x + NODE_W / 2, y: y + NODE_H / 2, left: x, right: x + NODE_W});
    }
    layout.columns.push(column);
  });
  const out = [];
  for (let j = 0; j < outputs; j++) {
    const node = document.createElement("div"), x = columnX(layers + 1), y = 40 + 40 + j * GAP_Y;
    node.className = "node output-node";
    node.style.left = `${x - 7}px`; node.style.top = `${y - 7}px`;
    node.style.background = outputs === 2 ? css(j ? 1 : -1) : "#fff";
    node.title = outputs === 2 ? `output: class ${j} (the heatmap is p(class 1))` : "output";
    nodes.append(node);
    out.push({x, y, left: x - 7, right: x + 7});
  }
  layout.columns.push(out);
  page.layout = layout;
  $("layer-count").textContent = layers;
  $("layer-word").textContent = layers === 1 ? "hidden layer" : "hidden layers";
  $("add-layer").disabled = layers >= MAX_LAYERS;
  $("remove-layer").disabled = layers === 0;
  buildLinks();
}

function drawFeature(canvas, f) {
  const n = 25, values = [];
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < n; col++) {
      const a = -DOMAIN + 2 * DOMAIN * col / (n - 1), b = -DOMAIN + 2 * DOMAIN * row / (n - 1);
      values.push(f(a, b));
    }
  }
  const top = Math.max(...values.map(Math.abs)) || 1;
  paint(canvas, values.map((v) => v / top), n);
}

// Every connection, made once per layout; each frame sets its width and colour by the scratch network's weight, and
// hovering one shows both sides' values of the latest frame.
function buildLinks() {
  const svg = $("links"), layout = page.layout;
  svg.innerHTML = "";
  for (let k = 0; k + 1 < layout.columns.length; k++) {
    const from = layout.columns[k], to = layout.columns[k + 1];
    to.forEach((target, j) => from.forEach((source, i) => {
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      const x0 = source.right ?? source.x, x1 = target.left, mid = (x0 + x1) / 2;
      path.setAttribute("d", `M${x0},${source.y} C${mid},${source.y} ${mid},${target.y} ${x1},${target.y}`);
      path.setAttribute("stroke", "#ccc");
      path.setAttribute("stroke-width", 1);
      path.setAttribute("stroke-opacity", "0.85");
      path.dataset.link = `${k}-${i}-${j}`;
      const name = `${k === 0 ? from[i].name : `neuron ${k}.${i + 1}`} \u2192 ` +
        `${k + 1 === layout.columns.length - 1 ? `output ${j}` : `neuron ${k + 1}.${j + 1}`}`;
      path.addEventListener("mousemove", (e) => {
        const w = linkWeights(page.last, k, i, j);
        if (w) showTip(e, `weight ${name}<br>scratch ${fmt(w[0], 12)}<br>torch&nbsp;&nbsp; ${fmt(w[1], 12)}<br>` +
          `|difference| ${Math.abs(w[0] - w[1]).toExponential(2)}`);
      });
      path.addEventListener("mouseleave", hideTip);
      svg.append(path);
    }));
  }
}

function linkWeights(frame, k, i, j) {  // [scratch, torch] weight of layer k from unit i to unit j
  if (!frame) return null;
  const key = `layers.${2 * k}.weight`, ws = frame.pictures.scratch.weights[key], wt = frame.pictures.torch.weights[key];
  return ws && ws[j] && wt && wt[j] ? [ws[j][i], wt[j][i]] : null;
}

function drawLinks(frame) {
  for (const path of $("links").querySelectorAll("path")) {
    const [k, i, j] = path.dataset.link.split("-").map(Number), w = linkWeights(frame, k, i, j);
    if (!w) continue;
    path.setAttribute("stroke", css(w[0]));
    path.setAttribute("stroke-width", Math.min(8, 0.8 + 3 * Math.abs(w[0])));
  }
}

function showNodeTip(event, k, j) {
  const frame = page.last;
  if (!frame) return;
  const key = `layers.${2 * k}.bias`, bs = frame.pictures.scratch.weights[key], bt = frame.pictures.torch.weights[key];
  showTip(event, `neuron ${k + 1}.${j + 1}: bias<br>scratch ${fmt(bs[j], 12)}<br>torch&nbsp;&nbsp; ${fmt(bt[j], 12)}`);
}

function showTip(event, html) {
  const tip = $("tooltip"), box = $("diagram").getBoundingClientRect();
  tip.innerHTML = html; tip.hidden = false;
  tip.style.left = `${event.clientX - box.left + 12}px`; tip.style.top = `${event.clientY - box.top + 12}px`;
}
function hideTip() { $("tooltip").hidden = true; }

function fmt(v, digits = 4) { return v === null || v === undefined ? "n/a" : Number(v).toPrecision(digits); }

// ---- a frame: everything that changes as the networks learn ----------------------------------------------------

function render(frame) {
  page.last = frame;
  $("epoch").textContent = String(frame.step).padStart(6, "0").replace(/(\d{3})(\d{3})$/, "$1,$2");
  $("epoch").dataset.value = frame.step;
  if (frame.point && (!page.curve.length || page.curve[page.curve.length - 1].epoch < frame.point.epoch)) {
    page.curve.push(frame.point);
  }
  for (const side of SIDES) {
    const box = $(side);
    for (const key of ["train_loss", "test_loss", "test_accuracy"]) {
      const el = box.querySelector(`.${key}`), v = frame[side][key];
      el.dataset.value = v ?? "";
      el.textContent = v === undefined ? "-" : v === null ? "diverged" :
        key === "test_accuracy" ? `${(100 * v).toFixed(1)}%` : v.toFixed(4);
    }
    box.querySelector(".accuracy").hidden = settings.problem !== "classification";
    drawHeatmap(side, frame);
    drawCurve(side);
    const thumbs = frame.pictures[side].neurons;
    let index = 0;
    settings.hidden.forEach((size, k) => {
      for (let j = 0; j < size; j++, index++) {
        const canvas = document.querySelector(`#neuron-${k}-${j} canvas.${side}`);
        if (canvas && thumbs[index]) paint(canvas, fromBytes(thumbs[index]), frame.thumbnail);
      }
    });
  }
  $("max-loss-diff").textContent = frame.max_loss_difference === null ? "inf" : frame.max_loss_difference.toExponential(1);
  $("max-loss-diff").dataset.value = frame.max_loss_difference ?? "Infinity";
  $("max-param-diff").textContent = frame.max_parameter_difference.toExponential(1);
  $("max-param-diff").dataset.value = frame.max_parameter_difference;
  $("difference-note").textContent = settings.dtype === "float64"
    ? "float64: the two sides differ by rounding alone (about 1e-15) while training stays smooth; a chaotic run (a "
      + "large learning rate) lets last-bit differences grow."
    : "float32: rounding differs in the 7th digit and training amplifies it: watch the two sides drift apart.";
  drawLinks(frame);
  if (frame.diverged) { pause(); status("A loss became inf or NaN: training diverged. Lower the learning rate and reset.", true); }
}

// ---- the session ------------------------------------------------------------------------------------------

async function rebuild() {
  pause();
  const generation = ++page.generation, old = page.id;
  page.id = null; page.curve = []; page.last = null;
  if (old) api("DELETE", `/api/playground/${old}`).catch(() => {});
  layoutNetwork();
  try {
    const {id} = await api("POST", "/api/playground", settings);
    if (generation !== page.generation) { api("DELETE", `/api/playground/${id}`).catch(() => {}); return; }
    page.id = id;
    const description = await api("GET", `/api/playground/${id}`);
    page.points = description;
    page.curve = description.curve;
    const frame = await api("GET", `/api/playground/${id}/frame`);
    if (generation === page.generation) { render(frame); status(""); }
  } catch (error) { status(error.message, true); }
}

function play() {
  if (!page.id || page.playing) return;
  page.playing = true;
  $("play").classList.add("playing"); $("play").innerHTML = "&#x275a;&#x275a;";
  const source = new EventSource(`/api/playground/${page.id}/stream`), generation = page.generation;
  page.source = source;
  source.onmessage = (event) => { if (generation === page.generation && page.source === source) render(JSON.parse(event.data)); };
  source.onerror = () => { if (page.source === source) { pause(); if (!page.last || !page.last.diverged) status("the stream stopped; press play to go on", true); } };
}

function pause() {
  if (page.source) page.source.close();
  page.source = null; page.playing = false;
  $("play").classList.remove("playing"); $("play").innerHTML = "&#x25b6;";
}

async function step() {
  pause();
  if (!page.id) return;
  const generation = page.generation;
  try {
    await api("POST", `/api/playground/${page.id}/step`, {steps: 1});
    const frame = await api("GET", `/api/playground/${page.id}/frame`);
    if (generation === page.generation) render(frame);
  } catch (error) { status(error.message, true); }
}

function change(edit) { edit(); rebuild(); }

function toggleFeature(name) {
  const on = settings.features.includes(name);
  if (on && settings.features.length === 1) { status("at least one input feature is needed", true); return; }
  change(() => { settings.features = on ? settings.features.filter((f) => f !== name)
    : FEATURES.map((f) => f[0]).filter((f) => f === name || settings.features.includes(f)); });
}

// ---- controls ---------------------------------------------------------------------------------------------

function drawDatasetIcon(canvas, name) {
  const n = 26, values = [];
  for (let row = 0; row < n; row++) {
    for (let col = 0; col < n; col++) {
      const a = -6 + 12 * col / (n - 1), b = -6 + 12 * row / (n - 1), r = Math.hypot(a, b);
      const spiral = Math.sin(Math.atan2(a, b) - r * 2 * Math.PI / 5 * 0.57 * 2);
      values.push({circles: r < 3 ? 1 : -1, xor: a * b >= 0 ? 1 : -1, gaussian: Math.tanh((a + b) / 2),
        spiral: r < 5.5 ? Math.sign(spiral) : 0, plane: (a + b) / 12,
        "multi-gaussian": Math.sin(a * Math.PI / 8 + Math.PI / 2) * Math.sign(b) * Math.min(1, Math.abs(b) / 2)}[name]);
    }
  }
  paint(canvas, values, n);
}

function buildDatasets() {
  const box = $("datasets");
  box.innerHTML = "";
  for (const name of DATASETS[settings.problem]) {
    const canvas = document.createElement("canvas");
    canvas.dataset.dataset = name; canvas.title = name;
    canvas.className = name === settings.dataset ? "selected" : "";
    drawDatasetIcon(canvas, name);
    canvas.addEventListener("click", () => { change(() => { settings.dataset = name; }); buildDatasets(); });
    box.append(canvas);
  }
}

function fillSelect(id, values, current) {
  const select = $(id);
  select.innerHTML = values.map((v) => `<option value="${v}"${v === current ? " selected" : ""}>${v}</option>`).join("");
}

function setup() {
  fillSelect("lr", LEARNING_RATES, settings.lr);
  fillSelect("reg_rate", REG_RATES, settings.reg_rate);
  for (const id of ["activation", "regularization", "problem", "dtype"]) $(id).value = settings[id];
  $("lr").onchange = () => {
    settings.lr = Number($("lr").value);
    if (page.id) api("PATCH", `/api/playground/${page.id}`, {lr: settings.lr}).catch((e) => status(e.message, true));
  };
  $("reg_rate").onchange = () => change(() => { settings.reg_rate = Number($("reg_rate").value); });
  for (const id of ["activation", "regularization", "dtype"]) $(id).onchange = () => change(() => { settings[id] = $(id).value; });
  $("problem").onchange = () => change(() => {
    settings.problem = $("problem").value;
    settings.dataset = DATASETS[settings.problem][0];
    buildDatasets();
  });
  const sliders = {train_ratio: [(v) => v / 100, (v) => `${v}%`], noise: [(v) => v / 100, (v) => `${v}`],
    batch_size: [(v) => v, (v) => `${v}`]};
  for (const [id, [value, text]] of Object.entries(sliders)) {
    $(id).oninput = () => { $(`${id}-text`).textContent = text(Number($(id).value)); };
    $(id).onchange = () => change(() => { settings[id] = value(Number($(id).value)); });
  }
  $("add-layer").onclick = () => change(() => { settings.hidden.push(2); });
  $("remove-layer").onclick = () => change(() => { settings.hidden.pop(); });
  $("play").onclick = () => (page.playing ? pause() : play());
  $("step").onclick = step;
  $("reset").onclick = rebuild;
  for (const id of ["show-test", "discretize"]) $(id).onchange = () => page.last && render(page.last);
  window.addEventListener("pagehide", () => {  // a closed page ends its session (its stream closes with it)
    if (page.id) fetch(`/api/playground/${page.id}`, {method: "DELETE", keepalive: true});
  });
  window.addEventListener("resize", () => { layoutNetwork(); if (page.last) render(page.last); });
  buildDatasets();
  rebuild();
}

setup();
