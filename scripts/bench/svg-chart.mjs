// A small SVG line chart for docs/performance.md: one path per series (points in x order), axis labels, a
// legend, and a log-scale axis where the values span decades. Pure: results in, SVG text out.
//
//   lineChart({ title, x: { label, log, ticks?, format? }, y: { label, log?, format? },
//               series: [{ name, points: [[x, y], ...] }] })

const WIDTH = 640;
const HEIGHT = 400;
const MARGIN = { left: 72, right: 16, top: 36, bottom: 56 };
// Colour-blind safe (Okabe-Ito), with a dash pattern per series so print and grey-scale still tell them apart.
const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'];
const DASHES = ['', '6 3', '2 3', '8 3 2 3', '4 4', '1 2', '10 4'];

const escapeXml = (s) =>
  String(s).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);
const num = (x) => Number(x.toFixed(2));

/** Ticks of a log axis: the powers of ten from the one at or below min to the one at or above max (the axis
 * spans them, so every point lies inside); with fewer than three, 2× and 5× fill in. */
export function logTicks(min, max) {
  if (!(min > 0 && max >= min)) throw new Error(`logTicks: needs 0 < min <= max (got ${min}, ${max})`);
  const lo = Math.floor(Math.log10(min) + 1e-9);
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(max) - 1e-9));
  const decades = [];
  for (let e = lo; e <= hi; e++) decades.push(Number((10 ** e).toPrecision(12)));
  if (decades.length >= 3) return decades;
  return decades
    .flatMap((d, i) => (i < decades.length - 1 ? [d, 2 * d, 5 * d] : [d]))
    .map((v) => Number(v.toPrecision(12)));
}

/** Ticks of a linear axis from 0 (or min when negative) to a round maximum at or above max. */
export function linearTicks(min, max, count = 5) {
  const lo = Math.min(0, min);
  const span = max - lo || Math.abs(max) || 1;
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v < max + step - 1e-9 * step; v += step)
    ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Maps a value to pixels on an axis spanning [lo, hi] (log or linear) onto [p0, p1]. */
export function scale(lo, hi, p0, p1, log) {
  const f = log ? Math.log10 : (v) => v;
  const a = f(lo);
  const b = f(hi);
  return (v) => p0 + ((f(v) - a) / (b - a || 1)) * (p1 - p0);
}

const defaultFormat = (v) => {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
};

/** The SVG text of a line chart; see the header for the shape of `spec`. */
export function lineChart(spec) {
  const { title, x, y } = spec;
  const series = spec.series.map((s) => ({
    name: s.name,
    points: s.points.filter(([px, py]) => Number.isFinite(px) && Number.isFinite(py)).sort((a, b) => a[0] - b[0]),
  }));
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  if (!xs.length) throw new Error(`lineChart ${title}: no finite points`);
  if (x.log && Math.min(...xs) <= 0) throw new Error(`lineChart ${title}: a log x axis needs x > 0`);
  if (y.log && Math.min(...ys) <= 0) throw new Error(`lineChart ${title}: a log y axis needs y > 0`);

  const xTicks =
    x.ticks ?? (x.log ? logTicks(Math.min(...xs), Math.max(...xs)) : linearTicks(Math.min(...xs), Math.max(...xs)));
  const yTicks =
    y.ticks ?? (y.log ? logTicks(Math.min(...ys), Math.max(...ys)) : linearTicks(Math.min(...ys), Math.max(...ys)));
  const xLo = Math.min(...xs, ...xTicks);
  const xHi = Math.max(...xs, ...xTicks);
  const yLo = Math.min(...ys, ...yTicks);
  const yHi = Math.max(...ys, ...yTicks);
  const plot = { x0: MARGIN.left, x1: WIDTH - MARGIN.right, y0: HEIGHT - MARGIN.bottom, y1: MARGIN.top };
  const sx = scale(xLo, xHi, plot.x0, plot.x1, x.log);
  const sy = scale(yLo, yHi, plot.y0, plot.y1, y.log);
  const fx = x.format ?? defaultFormat;
  const fy = y.format ?? defaultFormat;

  const out = [];
  const LEGEND_ROW = 18;
  const total = HEIGHT + 6 + LEGEND_ROW * series.length; // the legend sits below the plot, never over a line
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${total}" width="${WIDTH}" height="${total}" ` +
      `font-family="sans-serif" font-size="12">`,
  );
  out.push(`<title>${escapeXml(title)}</title>`);
  out.push(`<rect width="${WIDTH}" height="${total}" fill="#ffffff"/>`);
  out.push(`<text x="${WIDTH / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`);
  // grid and ticks
  for (const t of xTicks) {
    const px = num(sx(t));
    out.push(
      `<g class="x-tick" data-value="${t}"><line x1="${px}" y1="${plot.y1}" x2="${px}" y2="${plot.y0}" ` +
        `stroke="#dddddd"/><text x="${px}" y="${plot.y0 + 16}" text-anchor="middle">${escapeXml(fx(t))}</text></g>`,
    );
  }
  for (const t of yTicks) {
    const py = num(sy(t));
    out.push(
      `<g class="y-tick" data-value="${t}"><line x1="${plot.x0}" y1="${py}" x2="${plot.x1}" y2="${py}" ` +
        `stroke="#dddddd"/><text x="${plot.x0 - 6}" y="${py + 4}" text-anchor="end">${escapeXml(fy(t))}</text></g>`,
    );
  }
  out.push(
    `<path class="axes" d="M${plot.x0} ${plot.y1} L${plot.x0} ${plot.y0} L${plot.x1} ${plot.y0}" ` +
      `fill="none" stroke="#000000"/>`,
  );
  const xLabel = `${x.label}${x.log ? ' (log scale)' : ''}`;
  const yLabel = `${y.label}${y.log ? ' (log scale)' : ''}`;
  out.push(
    `<text class="x-label" x="${(plot.x0 + plot.x1) / 2}" y="${HEIGHT - 14}" text-anchor="middle">` +
      `${escapeXml(xLabel)}</text>`,
  );
  out.push(
    `<text class="y-label" transform="translate(16 ${(plot.y0 + plot.y1) / 2}) rotate(-90)" ` +
      `text-anchor="middle">${escapeXml(yLabel)}</text>`,
  );
  // series
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const dash = DASHES[i % DASHES.length];
    const d = s.points.map(([px, py], j) => `${j ? 'L' : 'M'}${num(sx(px))} ${num(sy(py))}`).join(' ');
    out.push(
      `<path class="series" data-series="${escapeXml(s.name)}" d="${d}" fill="none" stroke="${colour}" ` +
        `stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
    );
    for (const [px, py] of s.points)
      out.push(`<circle cx="${num(sx(px))}" cy="${num(sy(py))}" r="3" fill="${colour}"/>`);
  });
  // legend: one row per series under the x label
  series.forEach((s, i) => {
    const ly = HEIGHT + 6 + i * LEGEND_ROW;
    const colour = COLOURS[i % COLOURS.length];
    const dash = DASHES[i % DASHES.length];
    out.push(
      `<g class="legend"><line x1="${plot.x0}" y1="${ly - 4}" x2="${plot.x0 + 28}" y2="${ly - 4}" ` +
        `stroke="${colour}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>` +
        `<circle cx="${plot.x0 + 14}" cy="${ly - 4}" r="3" fill="${colour}"/>` +
        `<text x="${plot.x0 + 36}" y="${ly}">${escapeXml(s.name)}</text></g>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Byte sizes as axis labels: 4 KiB, 16 MiB. */
export function formatBytes(v) {
  for (const [unit, f] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ])
    if (v >= f) return `${Number((v / f).toPrecision(3))} ${unit}`;
  return `${v} B`;
}
