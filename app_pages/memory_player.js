// The memory player: M_t and its write at any token of a run, redrawn in the browser.
// Two instances share one store on window: one receives a run's payload once (bytes,
// nested_learning/viz/player.py), the other (small JSON: run id and token) draws it. A scrub
// or a Play step never goes to the server; a settled token is reported (trigger "settled") 300 ms later.

const STORE = (window.__nleMemoryPlayer = window.__nleMemoryPlayer || { runs: new Map(), waiting: new Set() });
const KEPT_RUNS = 4;
const CHECKPOINT = 64; // tokens between cached pooled memories: a scrub replays at most 63 writes
const SETTLE_MS = 300;

function parse(bytes) {
  const buffer = bytes.slice().buffer; // an aligned copy: float32 views need a 4-byte aligned start
  const view = new DataView(buffer);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  if (magic !== "NLEP") throw new Error("not a memory player payload");
  const length = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, length)));
  const arrays = {};
  let offset = 8 + length;
  for (const [name, shape] of header.arrays) {
    const count = shape.reduce((a, b) => a * b, 1);
    arrays[name] = new Float32Array(buffer, offset, count);
    offset += 4 * count;
  }
  return { header, arrays, checkpoints: null };
}

function storeRun(run) {
  STORE.runs.delete(run.header.run);
  STORE.runs.set(run.header.run, run);
  while (STORE.runs.size > KEPT_RUNS) STORE.runs.delete(STORE.runs.keys().next().value);
  for (const wake of [...STORE.waiting]) wake();
}

// ---- the pooled recurrence: M_t = a_t M_{t-1} + u_t k_t^T (with momentum: S_t = b_t S_{t-1} + u_t k_t^T, M_t = a_t M_{t-1} + S_t;
// with an anchor A, the 2-layer memory's W1 and W2: W_t = a_t W_{t-1} + (1 - a_t) A + u_t k_t^T)
function step(run, t, memory, momentum) {
  const { rows, columns } = run.header;
  const { writes, keys, retention, momentum_gate, anchor } = run.arrays;
  const a = retention[t];
  for (let i = 0; i < rows; i++) {
    const u = writes[t * rows + i];
    const base = i * columns;
    for (let j = 0; j < columns; j++) {
      let w = u * keys[t * columns + j];
      if (momentum) w = momentum[base + j] = momentum_gate[t] * momentum[base + j] + w;
      if (anchor) w += (1 - a) * anchor[base + j];
      memory[base + j] = a * memory[base + j] + w;
    }
  }
}

// The matrix's symbol with a subscript t ("M" for the linear memory; "W1" or "W2" for the 2-layer one).
const symbolAt = (header) => `${header.symbol || "M"}\u209c`;

function checkpoints(run) {
  if (run.checkpoints) return run.checkpoints;
  const memory = Float64Array.from(run.arrays.initial);
  const momentum = run.header.momentum ? Float64Array.from(run.arrays.initial_momentum) : null;
  const saved = [[memory.slice(), momentum && momentum.slice()]]; // saved[k]: after token k * CHECKPOINT - 1
  for (let t = 0; t < run.header.n_tokens; t++) {
    step(run, t, memory, momentum);
    if ((t + 1) % CHECKPOINT === 0) saved.push([memory.slice(), momentum && momentum.slice()]);
  }
  return (run.checkpoints = saved);
}

function memoryAt(run, t) {
  // Pooled M_t and M_{t-1} (t >= 0), from the last checkpoint before token t.
  const k = Math.floor(t / CHECKPOINT);
  const [m0, s0] = checkpoints(run)[k];
  const memory = m0.slice();
  const momentum = s0 && s0.slice();
  for (let s = k * CHECKPOINT; s < t; s++) step(run, s, memory, momentum);
  const previous = memory.slice();
  step(run, t, memory, momentum);
  return [memory, previous];
}

// ---- drawing
function colorTable(scale) {
  const parse = (c) => c.match(/[\d.]+/g).map(Number);
  const stops = scale.map(([x, c]) => [x, parse(c)]);
  const table = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    let s = 0;
    while (s < stops.length - 2 && x > stops[s + 1][0]) s++;
    const [x0, c0] = stops[s], [x1, c1] = stops[s + 1];
    const f = x1 > x0 ? Math.min(1, Math.max(0, (x - x0) / (x1 - x0))) : 0;
    for (let ch = 0; ch < 3; ch++) table[i * 3 + ch] = c0[ch] + f * (c1[ch] - c0[ch]);
  }
  return table;
}

function drawMatrix(canvas, values, rows, columns, table) {
  let limit = 0;
  for (const v of values) if (Math.abs(v) > limit && Number.isFinite(v)) limit = Math.abs(v);
  limit = limit > 0 ? limit : 1e-12;
  canvas.width = columns;
  canvas.height = rows;
  const context = canvas.getContext("2d");
  const image = context.createImageData(columns, rows);
  for (let p = 0; p < values.length; p++) {
    const i = Math.max(0, Math.min(255, Math.round(((values[p] / limit + 1) / 2) * 255))) * 3;
    image.data[p * 4] = table[i];
    image.data[p * 4 + 1] = table[i + 1];
    image.data[p * 4 + 2] = table[i + 2];
    image.data[p * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
  return limit;
}

function drawLoss(canvas, loss, cursor, hovered = null) {
  const width = Math.max(50, Math.round(canvas.clientWidth || 600));
  const height = canvas.height = 48;
  canvas.width = width;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, width, height);
  let top = 0;
  for (const v of loss) if (Number.isFinite(v) && v > top) top = v;
  top = top || 1;
  const n = loss.length;
  context.fillStyle = "#1f77b4";
  for (let x = 0; x < width; x++) { // a min-max envelope per pixel column: a one-token spike stays visible
    const from = Math.floor((x * n) / width), to = Math.max(from + 1, Math.floor(((x + 1) * n) / width));
    let low = Infinity, high = -Infinity;
    for (let t = from; t < to && t < n; t++) if (Number.isFinite(loss[t])) { low = Math.min(low, loss[t]); high = Math.max(high, loss[t]); }
    if (high >= low) context.fillRect(x, height - (high / top) * height, 1, Math.max(1, ((high - low) / top) * height));
  }
  const at = (t) => Math.round(((t + 0.5) / n) * width);
  if (hovered !== null) { context.fillStyle = "#999"; context.fillRect(at(hovered), 0, 1, height); }
  context.fillStyle = "#000";
  context.fillRect(at(cursor) - 1, 0, 2, height);
}

function guesses(run, t) {
  // The model's top next-byte guesses after token t, from the recording, and the byte that came.
  const { header, arrays } = run;
  const k = header.arrays.find(([name]) => name === "topk_ids")[1][1];
  const shown = [];
  for (let r = 0; r < k; r++) {
    shown.push(`'${header.labels[arrays.topk_ids[t * k + r]]}' ${(100 * arrays.topk_probs[t * k + r]).toFixed(0)}%`);
  }
  const next = t + 1 < header.n_tokens ? ` (the next byte was '${header.labels[header.tokens[t + 1]]}')` : "";
  return `Its guesses for the next byte: ${shown.join(", ")}${next}.`;
}

function hoverAt(player, t) {
  // A token under the pointer, in the loss strip or the text: marked in both, its numbers in the readout.
  const { run } = player;
  t = Math.max(0, Math.min(t, run.header.n_tokens - 1));
  if (t === player.hovered) return;
  player.hovered = t;
  drawLoss(player.q("canvas.loss"), run.arrays.loss, player.token, t);
  markText(player, t, "hover");
  player.q(".readout").textContent = `Pointing at ${caption(run, t)} ${guesses(run, t)}`;
}

// ---- token search: every occurrence of a typed span (its UTF-8 bytes) in the run, marked in the text
function find(player) {
  const query = new TextEncoder().encode(player.q(".find input").value);
  const tokens = player.run.header.tokens;
  player.matches = [];
  for (const cell of player.q(".coloured .text").querySelectorAll(".found")) cell.classList.remove("found");
  if (query.length) {
    for (let t = 0; t + query.length <= tokens.length; t++) {
      let hit = true;
      for (let j = 0; j < query.length && hit; j++) hit = tokens[t + j] === query[j];
      if (hit) player.matches.push(t);
    }
    const covered = new Uint8Array(tokens.length);
    for (const t of player.matches) covered.fill(1, t, t + query.length);
    for (const cell of player.cells) if (covered[Number(cell.dataset.first)]) cell.classList.add("found");
  }
  player.q(".find-count").textContent = query.length ? `${player.matches.length} found` : "";
}

function nextMatch(player) {
  // Go to the first match after the player's token (from the start again after the last).
  const matches = player.matches || [];
  if (!matches.length) return;
  player.seek(matches.find((t) => t > player.token) ?? matches[0]);
}

function showTour(player) {
  const stops = player.run.header.tour || [];
  player.q(".tour").style.display = stops.length ? "" : "none";
  const i = player.tourIndex;
  player.q(".tour-caption").textContent = i < 0 ? `A tour of this run in ${stops.length} stops: press Next.`
    : `Stop ${i + 1} of ${stops.length}, token ${stops[i][0]}: ${stops[i][1]}`;
  player.q(".tour-back").disabled = i <= 0;
  player.q(".tour-next").disabled = i >= stops.length - 1;
}

function tourStep(player, direction) {
  const stops = player.run?.header.tour || [];
  const i = Math.max(0, Math.min(stops.length - 1, player.tourIndex + direction));
  if (!stops.length) return;
  pause(player, false);
  player.tourIndex = i;
  showTour(player);
  player.seek(stops[i][0]);
}

const maxAbs = (values) => values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const g3 = (x) => (Number.isFinite(x) ? String(Number(x.toPrecision(3))) : "n/a");

function caption(run, t) {
  const { header, arrays } = run;
  const label = header.labels[header.tokens[t]];
  const loss = arrays.loss[t];
  const parts = [Number.isFinite(loss) ? `loss ${loss.toFixed(3)}` : "loss n/a (no next token)"];
  const T = header.n_tokens;
  header.memory_layers.forEach((layer, i) => {
    const at = (k) => arrays.summary[(i * 3 + k) * T + t];
    parts.push(`L${layer}: surprise ${g3(at(0))}, lr ${g3(at(1))}, retention ${g3(at(2))}`);
  });
  return `Token ${t} (stream position ${header.start_position + t}): byte '${label}'. ${parts.join("; ")}.`;
}

// ---- the player
function build(root) {
  const html = `
    <div class="controls">
      <button class="play" aria-label="Play" title="Play / pause (the browser steps through the run)">Play</button>
      <button class="back" aria-label="Previous token" title="One step back">&#9664;</button>
      <input type="range" aria-label="Token" min="0" value="0" step="1">
      <button class="next" aria-label="Next token" title="One step on">&#9654;</button>
      <label>Speed <select class="rate" aria-label="Steps per second">
        <option value="1">1 step/s</option><option value="2">2 steps/s</option><option value="4" selected>4 steps/s</option>
        <option value="8">8 steps/s</option><option value="16">16 steps/s</option><option value="30">30 steps/s</option></select></label>
      <label>Tokens per step <select class="stride" aria-label="Tokens per step">
        <option>1</option><option>2</option><option>4</option><option>8</option><option>16</option><option>64</option></select></label>
    </div>
    <div class="tour"><button class="tour-back" aria-label="Tour back">&#9664; Back</button>
      <button class="tour-next" aria-label="Tour next">Next &#9654;</button><span class="tour-caption"></span></div>
    <p class="caption" data-testid="player-caption"></p>
    <p class="guesses"></p>
    <canvas class="loss" title="Loss over the run; click to go to a token"></canvas>
    <p class="context"><span class="before"></span><mark class="now"></mark><span class="after"></span></p>
    <div class="panels">
      <figure><figcaption class="title-now"></figcaption><canvas class="now" aria-label="the memory after the token"></canvas>
        <div class="scale"><span class="low"></span><span class="bar"></span><span class="high"></span></div></figure>
      <figure><figcaption class="title-write"></figcaption><canvas class="write" aria-label="what the token wrote"></canvas>
        <div class="scale"><span class="low"></span><span class="bar"></span><span class="high"></span></div></figure>
    </div>
    <p class="readout">Hover a heatmap for a cell's value, the loss strip or a character for its token.</p>
    <div class="coloured"><p class="text-title"></p>
      <div class="find"><input type="search" aria-label="Search the run" placeholder="Find a span of the run">
        <button class="find-next" aria-label="Next match">Next match</button><span class="find-count"></span></div>
      <div class="text" role="list"></div></div>`;
  const container = document.createElement("div");
  container.className = "player";
  container.innerHTML = html; // our own markup only: every text from the run is set as textContent
  root.appendChild(container);
  return container;
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (!data) return;
  if (data instanceof Uint8Array) return receiveRun(data); // the data instance: nothing to draw
  const root = parentElement;
  let player = root.__nlePlayer;
  if (!player) {
    const element = build(root);
    const q = (s) => element.querySelector(s);
    player = root.__nlePlayer = {
      element, q, run: null, token: 0, playing: null, settle: null, lastServer: null, lastReported: null,
      slider: q('input[type="range"]'), table: null, values: {},
    };
    const seek = (t, report = true) => show(player, Math.max(0, Math.min(t, player.run.header.n_tokens - 1)), report);
    player.seek = seek;
    player.slider.addEventListener("input", () => seek(Number(player.slider.value)));
    q(".back").addEventListener("click", () => player.run && seek(player.token - stride(player)));
    q(".next").addEventListener("click", () => player.run && seek(player.token + stride(player)));
    q(".play").addEventListener("click", () => (player.playing ? pause(player) : play(player)));
    q("canvas.loss").addEventListener("click", (e) => {
      if (!player.run) return;
      const box = e.target.getBoundingClientRect();
      seek(Math.floor(((e.clientX - box.left) / box.width) * player.run.header.n_tokens));
    });
    q("canvas.loss").addEventListener("mousemove", (e) => {
      if (!player.run) return;
      const box = e.target.getBoundingClientRect();
      hoverAt(player, Math.floor(((e.clientX - box.left) / box.width) * player.run.header.n_tokens));
    });
    q(".coloured .text").addEventListener("mouseover", (e) => {
      const first = e.target?.dataset?.first;
      if (first !== undefined && player.run) hoverAt(player, Number(first));
    });
    q(".find input").addEventListener("input", () => find(player));
    q(".find input").addEventListener("keydown", (e) => { if (e.key === "Enter") nextMatch(player); });
    q(".find-next").addEventListener("click", () => nextMatch(player));
    q(".tour-next").addEventListener("click", () => tourStep(player, 1));
    q(".tour-back").addEventListener("click", () => tourStep(player, -1));
    for (const cls of ["now", "write"]) {
      q(`canvas.${cls}`).addEventListener("mousemove", (e) => hover(player, e, cls));
    }
  }
  // A trigger, not a state: returning to a token reported before must reach the server again.
  // The run goes with the token: a report still in flight when another run arrives is ignored there.
  player.report = (t) => { player.lastReported = t; setTriggerValue("settled", { run: player.run.header.run, token: t }); };
  player.element.classList.toggle("slider-only", data.panels === false); // classroom mode: another figure is shown
  player.element.classList.toggle("no-text", data.text === false);
  const arrive = () => {
    const run = STORE.runs.get(data.run);
    if (!run) return false;
    const fresh = run !== player.run;
    player.run = run;
    const serverMoved = data.token !== player.lastServer && data.token !== player.lastReported;
    player.lastServer = data.token;
    if (fresh || serverMoved) {
      if (fresh) { pause(player, false); player.lastReported = null; }
      player.slider.max = String(run.header.n_tokens - 1);
      player.table = player.table || colorTable(run.header.colorscale);
      if (fresh) { buildText(player); player.tourIndex = -1; player.hovered = null; showTour(player); find(player); }
      show(player, Math.max(0, Math.min(data.token, run.header.n_tokens - 1)), false);
    }
    return true;
  };
  if (!arrive()) {
    player.q(".caption").textContent = "Loading the run's memory ...";
    const wake = () => { if (arrive()) STORE.waiting.delete(wake); };
    STORE.waiting.add(wake);
  }
}

function label(button, text) { button.textContent = text; button.setAttribute("aria-label", text); }

function stride(player) { return Number(player.q(".stride").value); }

function play(player) {
  if (!player.run) return;
  const last = player.run.header.n_tokens - 1;
  if (player.token >= last) show(player, 0, false); // Play at the end starts again from the beginning
  label(player.q(".play"), "Pause");
  const tick = () => {
    if (!player.element.isConnected) return pause(player, false);
    const next = Math.min(player.token + stride(player), last);
    show(player, next, false);
    if (next >= last) pause(player);
  };
  player.playing = setInterval(tick, 1000 / Number(player.q(".rate").value));
  player.q(".rate").onchange = () => { if (player.playing) { pause(player, false); play(player); } };
}

function pause(player, report = true) {
  if (player.playing) clearInterval(player.playing);
  player.playing = null;
  label(player.q(".play"), "Play");
  if (report && player.run) settle(player, 0);
}

function settle(player, delay = SETTLE_MS) {
  clearTimeout(player.settle);
  player.settle = setTimeout(() => {
    if (!player.playing && player.token !== player.lastReported) player.report(player.token);
  }, delay);
}

function show(player, t, report = true) {
  const { run, q } = player;
  const { header } = run;
  player.token = t;
  player.slider.value = String(t);
  q(".caption").textContent = caption(run, t);
  const T = header.n_tokens, label = (s) => header.labels[header.tokens[s]];
  const span = (from, to) => { let out = ""; for (let s = Math.max(0, from); s < Math.min(T, to); s++) out += label(s); return out; };
  q(".context .before").textContent = span(t - 40, t);
  q(".context .now").textContent = label(t);
  q(".context .after").textContent = span(t + 1, t + 25);
  q(".guesses").textContent = guesses(run, t);
  drawLoss(q("canvas.loss"), run.arrays.loss, t, player.hovered);
  const [memory, previous] = memoryAt(run, t);
  const write = memory.map((v, i) => v - previous[i]);
  const where = `layer ${header.layer}, head ${header.head}`;
  const symbol = symbolAt(header), before = `${header.symbol || "M"}\u209c\u208b\u2081`;
  q(".title-now").textContent = header.symbol && header.symbol !== "M"
    ? `The memory's ${symbol} (${header.row_name}s x ${header.column_name}s) after token ${t} (${where})`
    : `The memory M\u209c after token ${t} (${where})`;
  q(".title-write").textContent = `${symbol} \u2212 ${before}: what token ${t} wrote`;
  for (const [cls, values] of [["now", memory], ["write", write]]) {
    const limit = drawMatrix(q(`canvas.${cls}`), values, header.rows, header.columns, player.table);
    const scale = q(`canvas.${cls}`).parentElement.querySelector(".scale");
    scale.querySelector(".low").textContent = `-${g3(limit)}`;
    scale.querySelector(".high").textContent = `+${g3(limit)}`;
    player.values[cls] = values;
  }
  markText(player, t);
  q(".play").dataset.token = String(t);
  player.element.dataset.token = String(t); // tests and tools read the drawn token here
  player.element.dataset.limits = JSON.stringify([maxAbs(memory), maxAbs(write)]); // tests compare these
  if (report) settle(player);
}

// ---- the coloured text: one element per character, its background the layer's surprise (0 to the 98th
// percentile, the top 2% saturate); a click goes to its first byte. Labels are set as text, never HTML.
const ORANGES = [[255, 245, 235], [253, 141, 60], [127, 39, 4]];

function orange(f) {
  const [a, b] = f < 0.5 ? [ORANGES[0], ORANGES[1]] : [ORANGES[1], ORANGES[2]];
  const g = f < 0.5 ? f * 2 : f * 2 - 1;
  return `rgb(${a.map((c, i) => Math.round(c + g * (b[i] - c))).join(",")})`;
}

function buildText(player) {
  const { header, arrays } = player.run;
  const box = player.q(".coloured .text");
  box.replaceChildren();
  const values = arrays.span_values;
  const finite = Array.from(values).filter(Number.isFinite).sort((a, b) => a - b);
  const top = finite.length ? finite[Math.min(finite.length - 1, Math.floor(0.98 * finite.length))] || 1 : 1;
  player.q(".text-title").textContent = `Text coloured by surprise (layer ${header.layer}, mean over heads; ` +
    `darker = more surprising, scale 0 to ${g3(top)}): hover a character for its value, click it to go there.`;
  const fragment = document.createDocumentFragment();
  player.spanStarts = header.spans.map((span) => span[1]);
  header.spans.forEach(([label, first, last, kind], i) => {
    const cell = document.createElement("span");
    const f = Number.isFinite(values[i]) ? Math.min(1, Math.max(0, values[i] / top)) : 0;
    cell.textContent = kind === 2 ? "\u23ce" : label;
    cell.style.background = orange(f);
    cell.style.color = f > 0.6 ? "#fff" : "#000";
    if (kind === 1) cell.className = "control";
    const where = first === last ? `token ${header.start_position + first}` : `tokens ${header.start_position + first}-${header.start_position + last}`;
    cell.title = `${where} '${label}': surprise ${g3(values[i])}`;
    cell.dataset.first = String(first);
    fragment.appendChild(cell);
    if (kind === 2) fragment.appendChild(document.createElement("br"));
  });
  box.appendChild(fragment);
  box.onclick = (e) => { const first = e.target?.dataset?.first; if (first !== undefined) player.seek(Number(first)); };
  player.cells = box.querySelectorAll(":scope > span");
  player.marks = {};
}

function markText(player, t, mark = "now") {
  // Outline the character holding token t (class "now": the player's token; "hover": the pointer's).
  const starts = player.spanStarts;
  if (!starts) return;
  let lo = 0, hi = starts.length - 1; // the last span starting at or before t
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (starts[mid] <= t) lo = mid; else hi = mid - 1; }
  player.marks = player.marks || {};
  player.marks[mark]?.classList.remove(mark);
  player.marks[mark] = player.cells?.[lo];
  player.marks[mark]?.classList.add(mark);
}

function hover(player, event, cls) {
  const { run } = player;
  if (!run) return;
  const box = event.target.getBoundingClientRect();
  const { rows, columns, block, key_width } = run.header;
  const rowName = run.header.row_name || "value dim", columnName = run.header.column_name || "key dim";
  const i = Math.min(rows - 1, Math.floor(((event.clientY - box.top) / box.height) * rows));
  const j = Math.min(columns - 1, Math.floor(((event.clientX - box.left) / box.width) * columns));
  const value = player.values[cls][i * columns + j];
  const keys = block > 1 ? `${columnName}s ${j * block}-${Math.min(key_width, (j + 1) * block) - 1} (their mean)` : `${columnName} ${j}`;
  const symbol = symbolAt(run.header), name = cls === "now" ? symbol : `${symbol} \u2212 ${(run.header.symbol || "M")}\u209c\u208b\u2081`;
  player.q(".readout").textContent = `${name} at token ${player.token}: ${rowName} ${i}, ${keys}: ${value.toPrecision(4)}`;
}

function receiveRun(bytes) {
  // The data instance: parse the payload once (a rerun mounts the same bytes again), keep it in the store.
  const run = parse(bytes);
  if (!STORE.runs.has(run.header.run)) storeRun(run);
}
