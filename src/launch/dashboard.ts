/**
 * The monitor's page (`GET /`): one self-contained HTML document (no external scripts, fonts or styles) that
 * polls /api/status and /api/history every second and draws the rank table, the step time chart, the
 * stragglers, the collective each rank is in, and for pipelines the planned schedule (the same SVG renderer
 * as `dtrain schedule`, /api/pipeline.svg) beside the measured time per stage. A `?token=` in the page's
 * address is passed on to its requests.
 */

export function dashboardPage(runId: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dtrain ${escapeHtml(runId)}</title>
<style>
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; margin: 0 0 4px; }
#head { color: #555; margin-bottom: 12px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr.straggler td { background: #fff3cd; font-weight: 600; }
tr.failed td { background: #f8d7da; }
.section { margin: 16px 0; }
.warn { color: #a15c00; font-weight: 600; }
#step-chart { border: 1px solid #ddd; background: #fff; }
.row { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
#pipeline svg { max-width: 560px; height: auto; }
</style>
</head>
<body>
<h1>dtrain <span id="run">${escapeHtml(runId)}</span></h1>
<div id="head">loading…</div>
<div id="stragglers" class="section warn"></div>
<div class="row">
  <div class="section">
    <b>Step time</b> (median and slowest rank, last 20 steps each)
    <div><svg id="step-chart" width="640" height="200" viewBox="0 0 640 200"></svg></div>
  </div>
  <div class="section" id="pipeline"></div>
</div>
<div class="section"><b>Ranks</b>
<table id="ranks"><thead><tr>
<th>rank</th><th class="text">host</th><th>pid</th><th class="text">state</th><th>step</th><th>step s</th>
<th>compute s</th><th>samples/s</th><th>CPU %</th><th>memory</th><th>restarts</th><th>output age</th>
<th class="text">collective</th>
</tr></thead><tbody></tbody></table></div>
<div class="section" id="collectives"></div>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const url = (p) => token ? p + (p.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : p;
const fmt = (v, d) => v === undefined || v === null ? "-" : Number(v).toFixed(d);
const mem = (b) => b >= 1 << 30 ? (b / (1 << 30)).toFixed(1) + " GiB" : (b / (1 << 20)).toFixed(0) + " MiB";
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
let pipelineShown = false;

function drawTable(doc) {
  const rows = doc.ranks.map((r) => {
    const cls = [r.straggler ? "straggler" : "", r.state === "failed" ? "failed" : ""].join(" ").trim();
    const c = r.collective ? esc(r.collective.group + " " + r.collective.op + " #" + r.collective.seq + " " +
      r.collective.state + " " + fmt(r.collective.since_s, 1) + "s") : "";
    return '<tr data-rank="' + r.rank + '" class="' + cls + '"><td>' + r.rank + '</td><td class="text">' +
      esc(r.host) + "</td><td>" + (r.pid || "-") + '</td><td class="text">' + esc(r.state) + "</td><td>" +
      (r.step ?? "-") + "</td><td>" + fmt(r.step_s, 3) + "</td><td>" + fmt(r.compute_s, 3) + "</td><td>" +
      fmt(r.samples_per_s, 1) + "</td><td>" + fmt(r.cpu_percent, 0) + "</td><td>" + mem(r.rss_bytes) +
      "</td><td>" + r.restarts + "</td><td>" + fmt(r.last_output_age_s, 0) + ' s</td><td class="text">' + c +
      "</td></tr>";
  });
  document.querySelector("#ranks tbody").innerHTML = rows.join("");
}

function drawChart(points) {
  const svg = document.getElementById("step-chart");
  if (!points.length) { svg.innerHTML = '<text x="10" y="20" fill="#888">no steps reported yet</text>'; return; }
  const W = 640, H = 200, L = 50, B = 20;
  const max = Math.max(...points.map((p) => p.max_s)) * 1.1 || 1;
  const x = (i) => L + (points.length === 1 ? 0 : (i * (W - L - 10)) / (points.length - 1));
  const y = (v) => H - B - (v / max) * (H - B - 10);
  const line = (key, color) => '<polyline fill="none" stroke="' + color + '" stroke-width="1.5" points="' +
    points.map((p, i) => x(i).toFixed(1) + "," + y(p[key]).toFixed(1)).join(" ") + '"/>';
  svg.innerHTML = '<line x1="' + L + '" y1="' + (H - B) + '" x2="' + W + '" y2="' + (H - B) + '" stroke="#999"/>' +
    '<text x="4" y="14" font-size="11">' + max.toFixed(3) + ' s</text><text x="4" y="' + (H - B) +
    '" font-size="11">0</text>' + line("max_s", "#e45756") + line("median_s", "#4c78a8") +
    '<text x="' + (W - 150) + '" y="14" font-size="11" fill="#4c78a8">median</text>' +
    '<text x="' + (W - 90) + '" y="14" font-size="11" fill="#e45756">slowest</text>';
}

function drawCollectives(doc) {
  const byGroup = {};
  for (const r of doc.ranks) if (r.collective) (byGroup[r.collective.group] ??= []).push(r);
  const groups = Object.keys(byGroup);
  document.getElementById("collectives").innerHTML = groups.length ? "<b>Last collectives per group</b><ul>" +
    groups.map((g) => "<li>" + esc(g) + ": " + byGroup[g].map((r) => "rank " + r.rank + " " +
      esc(r.collective.op) + " #" + r.collective.seq + " " + esc(r.collective.state)).join(", ") + "</li>").join("") +
    "</ul>" : "";
}

async function drawPipeline(doc) {
  const el = document.getElementById("pipeline");
  if (!pipelineShown) {
    const res = await fetch(url("api/pipeline.svg"));
    if (!res.ok) return;
    pipelineShown = true;
    el.innerHTML = "<b>Pipeline: planned schedule</b><div>" + (await res.text()) +
      '</div><b>Measured per stage</b> (median over its ranks)<table id="stages"></table>';
  }
  const stages = {};
  for (const r of doc.ranks) (stages[r.group] ??= []).push(r);
  const med = (xs) => { const s = xs.filter((v) => v !== undefined).sort((a, b) => a - b);
    return s.length ? s[Math.floor((s.length - 1) / 2)] : undefined; };
  document.getElementById("stages").innerHTML = "<tr><th class=text>stage</th><th>step s</th><th>compute s</th></tr>" +
    Object.keys(stages).sort().map((g) => "<tr><td class=text>" + esc(g) + "</td><td>" +
      fmt(med(stages[g].map((r) => r.step_s)), 3) + "</td><td>" + fmt(med(stages[g].map((r) => r.compute_s)), 3) +
      "</td></tr>").join("");
}

async function refresh() {
  try {
    const [doc, hist] = await Promise.all([
      fetch(url("api/status")).then((r) => r.json()),
      fetch(url("api/history")).then((r) => r.json()),
    ]);
    document.getElementById("head").textContent = doc.state + " · attempt " + doc.attempt + " · " + doc.world_size +
      " ranks · started " + doc.started_at + " · updated " + doc.updated_at;
    document.getElementById("stragglers").textContent = doc.stragglers.length ?
      "Stragglers (compute time > group median + 20%): ranks " + doc.stragglers.join(", ") : "";
    drawTable(doc);
    drawChart(hist.step_time);
    drawCollectives(doc);
    await drawPipeline(doc);
  } catch (err) {
    document.getElementById("head").textContent = "the run does not answer: " + err;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
