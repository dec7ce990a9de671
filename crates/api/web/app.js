// Stratum's web interface: one page over the control plane's API (/v1/openapi.json documents it). It keeps the
// token in the tab's session storage, polls what the open view shows every two seconds, and draws the topology as
// SVG, charts with uPlot and the editor with CodeMirror.
"use strict";

const REFRESH_MILLISECONDS = 2000;
const SERIES_KEPT = 600; // ten minutes of one-second samples
const TIER_ORDER = ["cloud", "fog", "edge"]; // top to bottom

const state = {
  token: sessionStorage.getItem("stratum-token") || "",
  view: "topology",
  app: null,
  series: { t: [], s: {} },
  lastEventId: null,
  events: [],
  charts: {},
  editor: null,
  sourceLoaded: false,
  checkSequence: 0,
  lastReport: null,
  applying: null,
};

// ---- Plumbing ------------------------------------------------------------------------------------------------

function hashParameters() {
  const parameters = new URLSearchParams(location.hash.slice(1));
  return { token: parameters.get("token"), view: parameters.get("view") };
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  let body = null;
  const text = await response.text();
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { error: { code: "bad_answer", message: text } }; }
  if (response.status === 401) showLogin(body && body.error ? body.error.message : "");
  return { status: response.status, body };
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function number(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString("en");
  return value.toFixed(digits).replace(/\.0+$/, "");
}

function bytes(value) {
  if (!value) return "0";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return number(value) + " " + units[unit];
}

function table(target, columns, rows) {
  target.replaceChildren(
    element("thead", {}, element("tr", {}, columns.map((column) =>
      element("th", { class: column.number ? "number" : null, text: column.title })))),
    element("tbody", {}, rows.map((row) => element("tr", row.attributes || {}, columns.map((column, index) =>
      element("td", { class: column.number ? "number" : null }, row.cells[index]))))),
  );
}

// ---- Login and tabs ------------------------------------------------------------------------------------------

function showLogin(message) {
  document.getElementById("login").hidden = false;
  document.querySelector("main").hidden = true;
  document.getElementById("login-error").textContent = message || "";
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = document.getElementById("login-token").value.trim();
  sessionStorage.setItem("stratum-token", state.token);
  document.getElementById("login").hidden = true;
  document.querySelector("main").hidden = false;
  refresh();
});

function showView(view) {
  if (!document.getElementById("view-" + view)) view = "topology";
  state.view = view;
  for (const section of document.querySelectorAll("section.view")) section.hidden = section.id !== "view-" + view;
  for (const tab of document.querySelectorAll("#tabs a")) tab.classList.toggle("active", tab.dataset.view === view);
  if (view === "editor") openEditor();
  refresh();
}

window.addEventListener("hashchange", () => {
  const { view } = hashParameters();
  if (view) showView(view);
});

// ---- Series and charts ---------------------------------------------------------------------------------------

function mergeSeries(answer) {
  const incoming = answer.timestamps_milliseconds;
  if (!incoming.length) return;
  const store = state.series;
  const before = store.t.length;
  store.t.push(...incoming);
  for (const name of Object.keys(store.s)) {
    store.s[name].push(...(answer.series[name] || new Array(incoming.length).fill(null)));
  }
  for (const [name, values] of Object.entries(answer.series)) {
    if (!store.s[name]) store.s[name] = new Array(before).fill(null).concat(values);
  }
  const excess = store.t.length - SERIES_KEPT;
  if (excess > 0) {
    store.t.splice(0, excess);
    for (const values of Object.values(store.s)) values.splice(0, excess);
  }
}

async function refreshSeries() {
  const since = state.series.t.length ? state.series.t[state.series.t.length - 1] : 0;
  const answer = await api("/v1/series?since=" + since);
  if (answer.status === 200) mergeSeries(answer.body);
}

const PALETTE = ["#2f6fde", "#e07b39", "#1f8a4c", "#c62f2f", "#8a4fd1", "#0d9aa5", "#b08a12", "#d04e9c"];

// Draws (or updates) a chart in the element `id`: `lines` are {label, values}, `x` the shared x values (seconds
// since 1970 for time). The element records how many updates it had, for the browser tests.
function chart(id, title, x, lines, options = {}) {
  const target = document.getElementById(id);
  if (!target) return;
  const width = Math.max(320, Math.min(target.parentElement.clientWidth - 12, options.width || 560));
  const key = lines.map((line) => line.label).join("|") + "#" + width;
  const data = [x, ...lines.map((line) => line.values)];
  let existing = state.charts[id];
  if (existing && existing.key !== key) {
    existing.plot.destroy();
    existing = null;
  }
  if (!existing) {
    target.replaceChildren();
    const plot = new uPlot({
      title,
      width,
      height: options.height || 200,
      scales: options.scales || { x: { time: options.time !== false } },
      axes: options.axes || [{}, { size: 60 }],
      series: [{}, ...lines.map((line, index) => Object.assign({
        label: line.label,
        stroke: line.stroke || PALETTE[index % PALETTE.length],
        width: 1.5,
        spanGaps: true,
        dash: line.dash,
      }, options.series || {}))],
    }, data, target);
    existing = state.charts[id] = { plot, key };
  } else {
    existing.plot.setData(data);
  }
  target.dataset.updates = String(Number(target.dataset.updates || 0) + 1);
  target.dataset.points = String(x.length);
}

function seriesSeconds() {
  return state.series.t.map((milliseconds) => milliseconds / 1000);
}

function seriesValues(name) {
  return state.series.s[name] || new Array(state.series.t.length).fill(null);
}

// ---- Topology ------------------------------------------------------------------------------------------------

const NODE_WIDTH = 250, ROW = 26, HEAD = 40, GAP = 28, PAD = 18, LABEL = 80;

function drawTopology(topology) {
  const root = document.getElementById("topology");
  const tiers = [...topology.tiers].sort((a, b) => TIER_ORDER.indexOf(a.tier) - TIER_ORDER.indexOf(b.tier));
  const boxes = {};
  const layers = [];
  let y = 0, width = 0;
  for (const tier of tiers) {
    const height = Math.max(...tier.nodes.map((node) => HEAD + node.components.length * ROW + 10)) + 2 * PAD;
    let x = LABEL + PAD;
    const group = svg("g", { "data-tier": tier.tier });
    layers.push({ tier: tier.tier, y, height, group });
    for (const node of tier.nodes) {
      const nodeHeight = HEAD + node.components.length * ROW + 10;
      const nodeGroup = svg("g", {
        class: "node" + (node.alive === false ? " lost" : ""),
        "data-node": node.name,
        transform: `translate(${x},${y + PAD})`,
      },
        svg("rect", { width: NODE_WIDTH, height: nodeHeight }),
        svg("text", { class: "node-name", x: 10, y: 17 }, node.name + (node.alive === false ? " — lost" : "")),
        svg("text", { class: "kind", x: 10, y: 31 },
          `${number(node.cpu_planned)}/${number(node.cpu_capacity)} cores · ${bytes(node.memory_planned_bytes)}/${bytes(node.memory_capacity_bytes)}`
          + (node.pool ? ` · pool ${node.pool}` : "")));
      node.components.forEach((component, index) => {
        const top = HEAD + index * ROW;
        const rate = component.kind === "sink" ? component.in_per_second : component.out_per_second;
        nodeGroup.append(svg("g", {
          class: "component" + (component.running ? "" : " stopped"),
          "data-component": component.name,
          transform: `translate(8,${top})`,
        },
        svg("rect", { width: NODE_WIDTH - 16, height: ROW - 4 }),
        svg("text", { x: 8, y: 15 }, component.name),
        svg("text", { class: "kind", x: NODE_WIDTH - 24, y: 15, "text-anchor": "end" },
          component.kind + (rate !== null && rate !== undefined ? ` · ${number(rate)}/s` : ""))));
        boxes[node.name + "/" + component.name] = { x: x + 8, y: y + PAD + top, w: NODE_WIDTH - 16, h: ROW - 4 };
      });
      group.append(nodeGroup);
      x += NODE_WIDTH + GAP;
    }
    width = Math.max(width, x + PAD);
    y += height;
  }
  const bands = layers.map((layer) => svg("g", {},
    svg("rect", { class: "band " + layer.tier, x: 0, y: layer.y, width, height: layer.height }),
    svg("text", { class: "band-label", x: 12, y: layer.y + 24 }, layer.tier)));
  // Paths are arcs on the machines' sides: within a machine on its right, between machines from one component's
  // side to the other's. Only paths between machines are labelled (each component shows its own rate).
  const paths = svg("g", { "pointer-events": "none" });
  const middle = (box) => box.y + box.h / 2;
  for (const edge of topology.edges) {
    const from = boxes[edge.from_node + "/" + edge.from], to = boxes[edge.to_node + "/" + edge.to];
    if (!from || !to) continue;
    const rate = edge.events_per_second;
    const between = edge.from_node !== edge.to_node;
    let d, labelX, labelY;
    if (from.x === to.x) {
      const right = from.x + from.w, bend = (between ? 60 : 18) + Math.abs(middle(to) - middle(from)) / 12;
      d = `M${right},${middle(from)} C${right + bend},${middle(from)} ${right + bend},${middle(to)} ${right},${middle(to)}`;
      labelX = right + bend * 0.75 + 2;
      labelY = (middle(from) + middle(to)) / 2;
    } else {
      const rightwards = to.x > from.x;
      const startX = rightwards ? from.x + from.w : from.x, endX = rightwards ? to.x : to.x + to.w;
      const half = (startX + endX) / 2;
      d = `M${startX},${middle(from)} C${half},${middle(from)} ${half},${middle(to)} ${endX},${middle(to)}`;
      labelX = half + 2;
      labelY = (middle(from) + middle(to)) / 2;
    }
    paths.append(svg("path", { class: "path" + (rate ? "" : " idle"), d, "data-edge": edge.from + "->" + edge.to }));
    if (between && rate !== null && rate !== undefined) {
      paths.append(svg("text", { class: "rate", x: labelX, y: labelY, "data-edge-rate": edge.from + "->" + edge.to },
        number(rate) + "/s"));
    }
  }
  width += 80;
  root.setAttribute("width", width);
  root.setAttribute("height", y);
  root.replaceChildren(...bands, ...layers.map((layer) => layer.group), paths);
}

function drawNodes(topology) {
  const rows = [];
  for (const tier of topology.tiers) {
    for (const node of tier.nodes) {
      // Agents on their own machines (`stratum server`) say whether they are alive and what they use; the
      // in-process agents of `stratum up` share this process, whose use the charts show.
      const agentState = node.alive === null || node.alive === undefined ? "in process" : node.alive ? "alive" : "LOST";
      const used = node.cpu_percent === null || node.cpu_percent === undefined
        ? "–" : `${number(node.cpu_percent)} % · ${bytes(node.memory_used_bytes)}`;
      rows.push({
        attributes: { "data-node-row": node.name, class: node.alive === false ? "lost" : null },
        cells: [node.name, tier.tier, node.pool || "", agentState,
          `${number(node.cpu_planned)} / ${number(node.cpu_capacity)}`,
          `${bytes(node.memory_planned_bytes)} / ${bytes(node.memory_capacity_bytes)}`,
          used, node.components.length],
      });
    }
  }
  table(document.getElementById("nodes"), [
    { title: "machine" }, { title: "tier" }, { title: "pool" }, { title: "agent" },
    { title: "cores planned / capacity", number: true }, { title: "memory planned / capacity", number: true },
    { title: "agent's CPU · memory", number: true }, { title: "components", number: true },
  ], rows);
  const x = seriesSeconds();
  const nodes = Object.keys(state.series.s).filter((name) => name.startsWith("node:"));
  const perNode = (measure) => nodes.filter((name) => name.endsWith(":" + measure))
    .map((name) => ({ label: name.split(":")[1], values: seriesValues(name) }));
  chart("process-cpu-chart", "CPU (%): this process, and each agent's", x,
    [{ label: "control plane", values: seriesValues("process:cpu_percent") }, ...perNode("cpu_percent")]);
  chart("process-memory-chart", "Memory (MiB): this process, and each agent's", x,
    [{ label: "control plane", values: seriesValues("process:memory_mib") }, ...perNode("memory_mib")]);
}

// ---- Views ---------------------------------------------------------------------------------------------------

async function refreshTopology() {
  const answer = await api("/v1/topology");
  if (answer.status !== 200) return;
  drawTopology(answer.body);
  drawNodes(answer.body);
}

async function refreshServices() {
  const answer = await api("/v1/services");
  if (answer.status !== 200) return;
  const container = document.getElementById("services");
  const x = seriesSeconds();
  for (const service of answer.body.services) {
    let card = container.querySelector(`[data-service="${service.name}"]`);
    if (!card) {
      card = element("div", { class: "card", "data-service": service.name },
        element("h3", {}, service.name + " ", element("span", { class: "badge target" })),
        element("div", { class: "figures" }),
        element("div", { class: "charts" },
          element("div", { class: "chart", id: `service-${service.name}-latency` }),
          element("div", { class: "chart", id: `service-${service.name}-load` })));
      container.append(card);
    }
    const badge = card.querySelector(".badge.target");
    const verdict = service.meets_targets === true ? "meets its latency target"
      : service.meets_targets === false ? "misses its latency target" : "no latency measured yet";
    badge.textContent = verdict;
    badge.className = "badge target " + (service.meets_targets === true ? "good" : service.meets_targets === false ? "bad" : "");
    card.dataset.meetsTarget = String(service.meets_targets);
    const figure = (value, label) => element("div", { class: "figure" }, element("b", { text: value }), element("span", { text: label }));
    card.querySelector(".figures").replaceChildren(
      figure(`${service.model} v${service.model_version ?? "?"}`, "model"),
      figure(service.input, "input"),
      figure(`${service.replicas} (${service.min_replicas}–${service.max_replicas})`, "replicas"),
      figure(number(service.requests_per_second), "requests/s"),
      figure(number(service.processed_per_second), "records/s from the stream"),
      ...service.targets.map((target) => figure(number(target.measured_ms, 2) + " ms", target.target)),
      figure(number(service.p50_ms, 2) + " ms", "p50"),
      figure(service.cold_starts, "cold starts"),
      figure(service.rejected, "turned away"),
    );
    const target = service.targets.find((item) => item.percentile >= 99) || service.targets[0];
    const latency = [
      { label: "p50 ms", values: seriesValues(`service:${service.name}:p50_ms`) },
      { label: "p99 ms", values: seriesValues(`service:${service.name}:p99_ms`) },
    ];
    if (target) latency.push({ label: target.target, values: x.map(() => target.at_most_ms), stroke: "#c62f2f", dash: [6, 4] });
    chart(`service-${service.name}-latency`, "Latency (ms)", x, latency);
    chart(`service-${service.name}-load`, "Load", x, [
      { label: "replicas", values: seriesValues(`service:${service.name}:replicas`) },
      { label: "requests/s", values: seriesValues(`service:${service.name}:requests_per_second`) },
      { label: "in flight", values: seriesValues(`service:${service.name}:in_flight`) },
    ]);
  }
  const scaling = state.events.filter((event) => ["scaled", "policy", "placement", "agent-lost"].includes(event.kind)).slice(-10);
  let list = container.querySelector("#scaling-events");
  if (!list) {
    container.append(element("h3", { text: "Scaling and migration" }), list = element("table", { id: "scaling-events", class: "grid" }));
  }
  table(list, [{ title: "when" }, { title: "what" }, { title: "component" }, { title: "message" }],
    scaling.reverse().map((event) => ({ cells: [new Date(event.at_milliseconds).toLocaleTimeString(), event.kind, event.component || "", event.message] })));
}

async function refreshComponents() {
  const answer = await api("/v1/components");
  if (answer.status !== 200) return;
  const components = answer.body.components;
  table(document.getElementById("components"), [
    { title: "component" }, { title: "kind" }, { title: "running" },
    { title: "in/s", number: true }, { title: "out/s", number: true }, { title: "p99 ms", number: true },
    { title: "events in", number: true }, { title: "events out", number: true },
    { title: "queue", number: true }, { title: "errors", number: true }, { title: "dead letters", number: true },
  ], components.map((component) => ({
    attributes: { "data-component-row": component.name },
    cells: [component.name, component.kind, component.running ? "yes" : "no",
      number(component.in_per_second), number(component.out_per_second), number(component.p99_ms, 2),
      component.events_in.toLocaleString("en"), component.events_out.toLocaleString("en"),
      component.queue_depth, component.errors, component.dead_letters],
  })));
  const running = components.filter((component) => component.running && component.kind !== "sink");
  chart("components-chart", "Records out per second", seriesSeconds(),
    running.map((component) => ({ label: component.name, values: seriesValues(`component:${component.name}:out_per_second`) })),
    { width: 1100, height: 240 });
}

function leaderboard(version) {
  return element("table", { class: "grid leaderboard" },
    element("thead", {}, element("tr", {}, ["rank", "algorithm", "hyperparameters", `${version.metric} (mean ± std)`, "fit s"].map(
      (title, index) => element("th", { class: index === 3 || index === 4 ? "number" : null, text: title })))),
    element("tbody", {}, version.leaderboard.map((entry) => element("tr", { class: entry.rank === 1 ? "winner" : null },
      element("td", { text: entry.rank }),
      element("td", { text: entry.algorithm }),
      element("td", { text: JSON.stringify(entry.params) }),
      element("td", { class: "number", text: entry.error ? entry.error : `${number(entry.mean, 3)} ± ${number(entry.std, 3)}` }),
      element("td", { class: "number", text: number(entry.fit_seconds, 2) })))));
}

async function refreshModels() {
  const answer = await api("/v1/models");
  if (answer.status !== 200) return;
  const container = document.getElementById("models");
  container.replaceChildren(...answer.body.models.map((model) => {
    const latest = model.versions[0];
    return element("div", { class: "card", "data-model": model.name },
      element("h3", {}, `${model.name} `, element("span", { class: "badge", text: `${model.task}, by ${model.metric}` })),
      element("p", { class: "muted", text: model.served_by.length
        ? "served by " + model.served_by.map((served) => `${served.service} (v${served.version})`).join(", ")
        : "not served" }),
      latest ? element("div", {},
        element("h3", { text: `Leaderboard of v${latest.version}` }),
        leaderboard(latest)) : element("p", { text: "no version in the store yet" }),
      element("h3", { text: "Versions" }),
      element("table", { class: "grid versions" },
        element("thead", {}, element("tr", {}, ["version", "trained", "algorithm", "score", "rows", "p50 µs", "p99 µs", "rows/s", "size", "peak memory"]
          .map((title) => element("th", { text: title })))),
        element("tbody", {}, model.versions.map((version) => element("tr", {},
          element("td", { text: "v" + version.version }),
          element("td", { text: new Date(version.created * 1000).toLocaleString() }),
          element("td", { text: version.algorithm }),
          element("td", { text: number(version.score, 3) }),
          element("td", { text: version.rows }),
          element("td", { text: number(version.profile.latency_p50_us) }),
          element("td", { text: number(version.profile.latency_p99_us) }),
          element("td", { text: number(version.profile.batch_rows_per_second, 0) }),
          element("td", { text: bytes(version.profile.size_bytes) }),
          element("td", { text: version.profile.peak_memory_bytes ? bytes(version.profile.peak_memory_bytes) : "–" }))))));
  }));
}

function panelBody(panel, id) {
  const data = panel.data;
  if (data.type === "empty") return element("p", { class: "muted", text: data.reason });
  if (data.type === "stat") return element("div", { class: "stat", text: number(data.value, 2) });
  if (data.type === "table") {
    const target = element("table", { class: "grid" });
    table(target, data.columns.map((title) => ({ title })), data.rows.map((row) => ({
      cells: row.map((value) => typeof value === "object" && value !== null ? JSON.stringify(value) : value ?? ""),
    })));
    return element("div", { class: "table-wrap" }, target);
  }
  return element("div", { class: "chart", id });
}

function drawPanelChart(panel, id) {
  const data = panel.data;
  if (data.type === "lines") {
    const xs = [...new Set(data.lines.flatMap((line) => line.points.map((point) => point[0])))].sort((a, b) => a - b);
    const lines = data.lines.map((line) => {
      const byX = new Map(line.points);
      return { label: line.label, values: xs.map((x) => byX.has(x) ? byX.get(x) : null) };
    });
    chart(id, panel.field || panel.source, xs.map((x) => x / 1000), lines, { width: 560 });
  } else if (data.type === "bars") {
    const labels = data.bars.map((bar) => bar.label);
    chart(id, panel.field || panel.source, labels.map((_, index) => index),
      [{ label: panel.field || "value", values: data.bars.map((bar) => bar.value) }],
      {
        width: 560,
        // Bars start at zero, and the first and last are whole.
        scales: { x: { time: false, range: () => [-0.5, labels.length - 0.5] }, y: { range: (_, __, max) => [0, (max || 1) * 1.1] } },
        series: { paths: uPlot.paths.bars({ size: [0.6, 80] }), fill: "#2f6fde55", points: { show: false } },
        axes: [{ values: (_, splits) => splits.map((split) => Number.isInteger(split) ? labels[split] ?? "" : "") }, { size: 60 }],
      });
  }
}

async function refreshDashboards() {
  const answer = await api("/v1/dashboards");
  if (answer.status !== 200) return;
  const container = document.getElementById("dashboards");
  if (!answer.body.dashboards.length) {
    container.replaceChildren(element("p", { class: "muted", text: "The file declares no dashboard." }));
    return;
  }
  answer.body.dashboards.forEach((dashboard, dashboardIndex) => {
    let section = container.querySelector(`[data-dashboard="${dashboard.name}"]`);
    if (!section) {
      section = element("div", { "data-dashboard": dashboard.name }, element("h2", { text: dashboard.name }),
        element("div", { class: "panels" }));
      container.append(section);
    }
    const grid = section.querySelector(".panels");
    dashboard.panels.forEach((panel, panelIndex) => {
      const id = `panel-${dashboardIndex}-${panelIndex}`;
      let box = grid.querySelector(`[data-panel-index="${panelIndex}"]`);
      const kind = panel.data.type;
      if (!box || box.dataset.kind !== kind || kind === "table" || kind === "stat" || kind === "empty") {
        const fresh = element("div", { class: "panel", "data-panel": panel.title, "data-panel-index": panelIndex, "data-kind": kind },
          element("h3", { text: panel.title }), panelBody(panel, id));
        if (box) {
          if (state.charts[id]) { state.charts[id].plot.destroy(); delete state.charts[id]; }
          box.replaceWith(fresh);
        } else {
          grid.append(fresh);
        }
        box = fresh;
      }
      drawPanelChart(panel, id);
    });
  });
}

async function refreshEvents() {
  const query = state.lastEventId === null ? "" : "?after=" + state.lastEventId;
  const answer = await api("/v1/events" + query);
  if (answer.status !== 200) return;
  for (const event of answer.body.events) {
    state.events.push(event);
    state.lastEventId = event.id;
  }
  state.events = state.events.slice(-500);
  if (state.view === "events") {
    table(document.getElementById("events"), [{ title: "when" }, { title: "what" }, { title: "component" }, { title: "message" }],
      [...state.events].reverse().map((event) => ({
        cells: [new Date(event.at_milliseconds).toLocaleString(), event.kind, event.component || "", event.message],
      })));
  }
}

// ---- Editor --------------------------------------------------------------------------------------------------

async function openEditor() {
  if (!state.editor) {
    state.editor = CodeMirror(document.getElementById("editor"), {
      value: "",
      mode: "stratum",
      lineNumbers: true,
      indentUnit: 2,
      gutters: ["CodeMirror-lint-markers"],
      lint: { getAnnotations: checkSource, async: true, delay: 400 },
    });
    document.getElementById("editor").CodeMirror = state.editor;
  }
  if (!state.sourceLoaded) {
    const answer = await api("/v1/app/source");
    if (answer.status === 200) {
      state.sourceLoaded = true;
      document.getElementById("source-file").textContent = answer.body.file;
      state.editor.setValue(answer.body.text);
      state.editor.clearHistory();
    }
  }
  setTimeout(() => state.editor.refresh(), 0);
}

// CodeMirror's lint addon calls this (after a pause in typing); it asks the control plane to check the text.
async function checkSource(text, updateLinting) {
  const sequence = ++state.checkSequence;
  const answer = await api("/v1/check", { method: "POST", body: JSON.stringify({ source: text }) });
  if (sequence !== state.checkSequence || answer.status !== 200) return;
  const report = answer.body;
  state.lastReport = report;
  const file = document.getElementById("source-file").textContent;
  updateLinting(report.diagnostics.filter((diagnostic) => diagnostic.file === file).map((diagnostic) => ({
    from: CodeMirror.Pos(diagnostic.line - 1, diagnostic.column - 1),
    to: CodeMirror.Pos(diagnostic.end_line - 1, Math.max(diagnostic.end_column - 1, diagnostic.column)),
    message: `${diagnostic.code}: ${diagnostic.message}` + (diagnostic.help ? `\nhelp: ${diagnostic.help}` : ""),
    severity: diagnostic.severity,
  })));
  showReport(report);
}

function showReport(report) {
  document.getElementById("check-summary").textContent = report.ok
    ? `no errors${report.warnings ? `, ${report.warnings} warning(s)` : ""}; planned`
    : `${report.errors} error(s), ${report.warnings} warning(s)`;
  document.getElementById("diagnostics").replaceChildren(...report.diagnostics.map((diagnostic) => element("li", {
    class: diagnostic.severity,
    "data-code": diagnostic.code,
    onclick: () => { state.editor.setCursor(diagnostic.line - 1, diagnostic.column - 1); state.editor.focus(); },
  },
  element("span", { class: "code", text: diagnostic.code }),
  `line ${diagnostic.line}:${diagnostic.column} — ${diagnostic.message}`,
  diagnostic.help ? element("div", { class: "muted", text: "help: " + diagnostic.help }) : null)));
  const plan = document.getElementById("plan");
  if (report.plan) {
    const target = element("table", { class: "grid" });
    table(target, [{ title: "machine" }, { title: "tier" }, { title: "cores", number: true }, { title: "components" }],
      report.plan.hosts.map((host) => ({ cells: [host.host, host.tier, `${number(host.cpu_used)} / ${number(host.cpu_capacity)}`, host.components.join(", ")] })));
    plan.replaceChildren(target);
  } else {
    plan.replaceChildren(element("p", { class: "muted", text: "no plan until the errors are fixed" }));
  }
  document.getElementById("changes").replaceChildren(...(report.changes.length
    ? report.changes.map((change) => element("li", { text: change }))
    : [element("li", { class: "muted", text: "nothing that runs changes" })]));
  const apply = document.getElementById("apply");
  apply.disabled = !(report.ok && state.app && state.app.can_apply && !state.applying);
  apply.title = state.app && !state.app.can_apply ? "the viewer's token cannot apply" : "";
}

document.getElementById("apply").addEventListener("click", () => {
  const changes = state.lastReport ? state.lastReport.changes : [];
  document.getElementById("confirm-changes").replaceChildren(...(changes.length
    ? changes.map((change) => element("li", { text: change }))
    : [element("li", { text: "no component changes where it runs or what it does" })]));
  document.getElementById("confirm").hidden = false;
});

document.getElementById("confirm-cancel").addEventListener("click", () => {
  document.getElementById("confirm").hidden = true;
});

document.getElementById("confirm-apply").addEventListener("click", async () => {
  document.getElementById("confirm").hidden = true;
  const status = document.getElementById("apply-status");
  const answer = await api("/v1/apply", { method: "POST", body: JSON.stringify({ source: state.editor.getValue() }) });
  if (answer.status === 202) {
    state.applying = { from: answer.body.from_version };
    status.textContent = `applying: version ${answer.body.from_version} drains, then the new one starts …`;
  } else {
    status.textContent = answer.body && answer.body.error ? answer.body.error.message : `failed (${answer.status})`;
  }
  document.getElementById("apply").disabled = true;
});

// ---- The loop ------------------------------------------------------------------------------------------------

async function refreshApp() {
  const answer = await api("/v1/app");
  if (answer.status !== 200) return false;
  const app = state.app = answer.body;
  document.getElementById("app-name").textContent = app.name ? `${app.name} v${app.version}` : "";
  const phase = document.getElementById("phase");
  phase.textContent = app.phase;
  phase.className = "phase " + app.phase;
  const banner = document.getElementById("banner");
  banner.hidden = app.phase === "running";
  banner.textContent = app.phase === "failed" ? "The application is not running: " + app.failure
    : app.phase === "starting" ? "The application is starting (models may be training) …"
    : app.phase === "restarting" ? "A new version is starting …" : "";
  if (state.applying && app.phase === "running" && app.version !== state.applying.from) {
    document.getElementById("apply-status").textContent = `version ${app.version} runs`;
    state.applying = null;
  }
  return true;
}

// ---- Simulate -------------------------------------------------------------------------------------------------

// Several entries in one field, separated by commas or spaces.
function entries(id) {
  return document.getElementById(id).value.split(/[\s,]+/).filter((entry) => entry);
}

function milliseconds(value) {
  return value >= 1000 ? number(value / 1000) + " s" : number(value) + " ms";
}

function clock(seconds) {
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3600), minutes = Math.floor(whole / 60) % 60, rest = whole % 60;
  return (hours ? hours + "h " : "") + minutes + "m " + rest + "s";
}

function showSimulation(report) {
  document.getElementById("simulate-summary").textContent =
    `${clock(report.simulated_seconds)} in steps of ${number(report.step_seconds, 2)} s on ${report.machines} machines, ` +
    `${report.instances} instances: ${number(report.records_made)} records made, ${number(report.records_delivered)} ` +
    `delivered, ${number(report.records_in_flight)} on their way at the end, ${number(report.records_dropped)} dropped, ` +
    `${number(report.records_held_back)} held back, ${number(report.records_lost_with_machines)} lost with machines; ` +
    `cost ${number(report.cost.total, 2)}`;
  const series = report.series;
  const x = series.seconds;
  const plain = { time: false, scales: { x: { time: false } } };
  chart("simulate-links-chart", "Link use (share of bandwidth)", x,
    report.links.map((link, index) => ({ label: `${link.from} -> ${link.to}`, values: series.link_use[index] })), plain);
  chart("simulate-buffered-chart", "Waiting in path logs (MiB)", x,
    [{ label: "MiB", values: series.buffered_bytes.map((value) => value / 1048576) }], plain);
  chart("simulate-arriving-chart", "Arriving at the ends of paths (records/s)", x,
    [{ label: "records/s", values: series.arriving_per_second }], plain);
  chart("simulate-oldest-chart", "The oldest arrival's age (s)", x,
    [{ label: "seconds", values: series.oldest_arrival_seconds }], plain);
  chart("simulate-replicas-chart", "Replicas", x,
    report.services.map((service, index) => ({ label: service.name, values: series.replicas[index] })), plain);
  table(document.getElementById("simulate-timeline"), [{ title: "at" }, { title: "what" }],
    report.timeline.map((happening) => ({ cells: [clock(happening.at), happening.what] })));
  table(document.getElementById("simulate-paths"),
    [{ title: "path" }, { title: "records", number: true }, { title: "p50", number: true },
      { title: "p95", number: true }, { title: "p99", number: true }, { title: "max", number: true }],
    report.paths.map((path) => ({ cells: [path.path, number(path.records), milliseconds(path.p50_ms),
      milliseconds(path.p95_ms), milliseconds(path.p99_ms), milliseconds(path.max_ms)] })));
  table(document.getElementById("simulate-links"),
    [{ title: "link" }, { title: "carried", number: true }, { title: "mean use", number: true },
      { title: "peak use", number: true }, { title: "cut for", number: true }],
    report.links.map((link) => ({ cells: [`${link.from} -> ${link.to}`, bytes(link.bytes),
      number(link.mean_utilisation * 100) + " %", number(link.peak_utilisation * 100) + " %",
      link.down_seconds ? clock(link.down_seconds) : "–"] })));
  table(document.getElementById("simulate-buffers"),
    [{ title: "from" }, { title: "to" }, { title: "paths", number: true }, { title: "peak one path", number: true },
      { title: "peak all", number: true }, { title: "dropped", number: true }, { title: "held back", number: true }],
    report.buffers.map((buffer) => ({ cells: [buffer.from, buffer.to, buffer.paths, bytes(buffer.peak_bytes_one_path),
      bytes(buffer.peak_bytes_all), number(buffer.dropped), number(buffer.held_back)] })));
  table(document.getElementById("simulate-services"),
    [{ title: "service" }, { title: "requests", number: true }, { title: "p50", number: true },
      { title: "p99", number: true }, { title: "objective" }, { title: "missed", number: true },
      { title: "max replicas", number: true }, { title: "cold starts", number: true }],
    report.services.map((service) => ({ cells: [service.name, number(service.requests), milliseconds(service.p50_ms),
      milliseconds(service.p99_ms), service.objective || "–", number(service.objective_missed * 100, 2) + " %",
      service.max_replicas, service.cold_starts] })));
  document.getElementById("simulate-notes").replaceChildren(...report.notes.map((note) => element("li", { text: note })));
}

document.getElementById("simulate-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = document.getElementById("simulate-status");
  const button = document.getElementById("simulate-run");
  button.disabled = true;
  status.textContent = "simulating …";
  const request = {
    duration: document.getElementById("simulate-duration").value.trim() || "1h",
    scale: entries("simulate-scale"),
    fail: entries("simulate-fail"),
    partition: entries("simulate-partition"),
  };
  const started = performance.now();
  const answer = await api("/v1/simulate", { method: "POST", body: JSON.stringify(request) });
  button.disabled = false;
  if (answer.status !== 200) {
    status.textContent = answer.body && answer.body.error ? answer.body.error.message : "failed: " + answer.status;
    status.className = "error";
    return;
  }
  status.className = "muted";
  status.textContent = `simulated in ${number((performance.now() - started) / 1000, 1)} s`;
  showSimulation(answer.body);
});

let refreshing = false;
async function refresh() {
  if (refreshing || !document.getElementById("login").hidden) return;
  refreshing = true;
  try {
    if (await refreshApp()) {
      await refreshSeries();
      await refreshEvents();
      const views = {
        topology: refreshTopology, services: refreshServices, components: refreshComponents,
        models: refreshModels, dashboards: refreshDashboards, events: async () => {},
        editor: async () => {}, simulate: async () => {},
      };
      if (state.app.phase === "running" || state.view === "editor") await views[state.view]();
    }
  } catch (error) {
    console.error(error);
  } finally {
    refreshing = false;
  }
}

(function start() {
  const { token, view } = hashParameters();
  if (token) {
    state.token = token;
    sessionStorage.setItem("stratum-token", token);
  }
  // The token leaves the address bar (and the history) once it is kept.
  history.replaceState(null, "", "#view=" + (view || "topology"));
  if (!state.token) showLogin("");
  showView(view || "topology");
  setInterval(refresh, REFRESH_MILLISECONDS);
})();
