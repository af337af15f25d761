// The millstream dashboard page: renders each snapshot the server sends on /events.
// Plain DOM and inline SVG; every value from the server is set as text, never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let lastMessage = 0;

function fmt(n, digits) {
  if (n === null || n === undefined) return "\u2013";
  if (typeof n === "string") return n;
  const d = digits === undefined ? (Math.abs(n) < 10 && !Number.isInteger(n) ? 1 : 0) : digits;
  return n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: 0 });
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function numCell(value, digits) {
  return el("td", fmt(value, digits), "num");
}

// A sparkline of [t, v] points: a line over a filled area, scaled to the box.
function drawSpark(svg, points, color) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const box = svg.viewBox.baseVal;
  const w = box.width, h = box.height;
  if (!points || points.length < 2) return;
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  let max = 0;
  for (const p of points) max = Math.max(max, p[1]);
  max = max || 1;
  const x = (t) => ((t - t0) / (t1 - t0 || 1)) * w;
  const y = (v) => h - 2 - (v / max) * (h - 6);
  const line = points.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" ");
  const area = document.createElementNS(SVG, "path");
  area.setAttribute("d", line + ` L${w} ${h} L0 ${h} Z`);
  area.setAttribute("fill", color);
  area.setAttribute("fill-opacity", "0.15");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", line);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", color);
  path.setAttribute("stroke-width", "2");
  path.setAttribute("vector-effect", "non-scaling-stroke");
  svg.appendChild(area);
  svg.appendChild(path);
}

function renderThroughput(t) {
  const css = getComputedStyle(document.documentElement);
  for (const side of ["in", "out"]) {
    const s = t[side];
    $("rate-" + side).textContent = fmt(s.rate);
    $("total-" + side).textContent = fmt(s.total, 0);
    $("topics-" + side).textContent = s.topics.length ? s.topics.join(", ") : "no topics";
    drawSpark($("spark-" + side), s.points, css.getPropertyValue("--" + side).trim());
  }
}

function renderLag(lag) {
  const css = getComputedStyle(document.documentElement);
  $("lag-total").textContent = fmt(lag.total, 0);
  const n = lag.partitions.length;
  $("lag-partitions").textContent = `${n} partition${n === 1 ? "" : "s"}`;
  drawSpark($("spark-lag"), lag.points, css.getPropertyValue("--lag").trim());
  let max = 0;
  for (const p of lag.partitions) max = Math.max(max, p.lag || 0);
  const body = $("partitions").tBodies[0];
  body.replaceChildren();
  for (const p of lag.partitions) {
    const bar = el("div", null, "bar" + (p.lag ? "" : " zero"));
    bar.style.width = (max ? Math.max((100 * (p.lag || 0)) / max, 0.5) : 0.5) + "%";
    const barCell = el("td");
    barCell.appendChild(bar);
    const tr = row([p.topic, String(p.partition), numCell(p.end, 0), numCell(p.committed, 0),
      numCell(p.lag, 0), barCell, el("td", p.owner || "unassigned", p.owner ? "" : "muted")]);
    tr.dataset.partition = `${p.topic}[${p.partition}]`;
    body.appendChild(tr);
  }
}

function renderGroup(group, workers) {
  $("member-count").textContent = String(group.members.length);
  $("group-state").textContent = group.state || "unknown";
  $("group-protocol").textContent = group.protocol || "";
  const body = $("members").tBodies[0];
  body.replaceChildren();
  for (const m of group.members) {
    const parts = el("td", m.partitions.length ? m.partitions.join(", ") : "none");
    parts.title = m.partitions.join(", ");
    const tr = row([m.client_id, m.host, parts, numCell(m.in_rate), numCell(m.out_rate)]);
    tr.dataset.client = m.client_id;
    body.appendChild(tr);
  }
  if (!group.members.length) body.appendChild(row([el("td", "no members", "muted")]));
  const wbody = $("workers").tBodies[0];
  wbody.replaceChildren();
  let inRate = 0, outRate = 0, up = 0;
  for (const w of workers) {
    if (w.up) {
      up += 1;
      inRate += w.in_rate || 0;
      outRate += w.out_rate || 0;
      wbody.appendChild(row([w.url, w.worker, numCell(w.records_in, 0), numCell(w.records_out, 0),
        numCell(w.in_rate), numCell(w.lag, 0)]));
    } else {
      wbody.appendChild(row([w.url, el("td", w.error || "down", "down"), "", "", "", ""]));
    }
  }
  if (!workers.length) wbody.appendChild(row([el("td", "no /metrics found (see docs/dashboard.md)", "muted")]));
  $("workers-rate").textContent = up ? `/metrics of ${up}: ${fmt(inRate)} in/s, ${fmt(outRate)} out/s` : "";
}

function renderStats(body, items) {
  const wrap = el("div", null, "stats");
  for (const [name, value] of Object.entries(items)) {
    const stat = el("div", null, "stat");
    stat.appendChild(el("div", fmt(value), "value"));
    stat.appendChild(el("div", name, "name"));
    wrap.appendChild(stat);
  }
  body.appendChild(wrap);
}

function renderTable(body, snap) {
  const table = el("table");
  const head = table.createTHead().insertRow();
  for (const c of snap.columns) head.appendChild(el("th", c));
  const tbody = table.createTBody();
  for (const r of snap.rows) {
    tbody.appendChild(row(r.map((v) => (typeof v === "number" ? numCell(v) : el("td", v === null ? "" : String(v))))));
  }
  body.appendChild(table);
}

function renderBars(body, items) {
  const entries = Object.entries(items);
  let max = 0;
  for (const [, v] of entries) max = Math.max(max, v);
  for (const [label, v] of entries) {
    const line = el("div", null, "hbar");
    line.appendChild(el("div", label, "l"));
    const track = el("div", null, "track");
    const fill = el("div", null, "fill");
    fill.style.width = (max > 0 ? (100 * Math.max(v, 0)) / max : 0) + "%";
    track.appendChild(fill);
    line.appendChild(track);
    line.appendChild(el("div", fmt(v), "v"));
    body.appendChild(line);
  }
  if (!entries.length) body.appendChild(el("div", "nothing yet", "muted"));
}

function renderSeries(body, points) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 400 120");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "series");
  body.appendChild(svg);
  drawSpark(svg, points, getComputedStyle(document.documentElement).getPropertyValue("--accent").trim());
  const last = points.length ? points[points.length - 1][1] : null;
  body.appendChild(el("div", `latest ${fmt(last)} \u00b7 ${points.length} points`, "sub"));
}

function renderPanels(panels) {
  const root = $("panels");
  root.replaceChildren();
  for (const p of panels) {
    const box = el("div", null, "panel");
    box.dataset.title = p.title;
    box.appendChild(el("h2", p.title));
    const body = el("div", null, "panel-body");
    const snap = p.snapshot;
    if (p.error) body.appendChild(el("div", p.error, "error"));
    else if (snap.kind === "stats") renderStats(body, snap.items);
    else if (snap.kind === "table") renderTable(body, snap);
    else if (snap.kind === "bars") renderBars(body, snap.items);
    else if (snap.kind === "series") renderSeries(body, snap.points);
    if (snap) box.dataset.kind = snap.kind;
    box.appendChild(body);
    root.appendChild(box);
  }
}

function render(s) {
  $("app-id").textContent = s.app;
  document.title = `${s.app} \u00b7 millstream`;
  renderThroughput(s.throughput);
  renderLag(s.lag);
  renderGroup(s.group, s.workers);
  renderPanels(s.panels);
  const errors = $("errors");
  errors.hidden = !s.errors.length;
  errors.textContent = s.errors.join("\n");
  $("updated").textContent = new Date(s.time * 1000).toLocaleTimeString();
}

function setStatus(live, text) {
  $("status-dot").className = "dot " + (live ? "live" : "stale");
  $("status-text").textContent = text;
}

function connect() {
  const source = new EventSource("/events");
  source.onmessage = (event) => {
    lastMessage = Date.now();
    setStatus(true, "live");
    render(JSON.parse(event.data));
  };
  source.onerror = () => setStatus(false, "reconnecting\u2026");
}

// A stream that went quiet (the server stalled) is shown stale, not live.
setInterval(() => {
  if (lastMessage && Date.now() - lastMessage > 10000) setStatus(false, "no update for " + Math.round((Date.now() - lastMessage) / 1000) + " s");
}, 1000);

connect();
