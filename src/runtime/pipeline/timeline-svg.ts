/**
 * The simulated timeline as an SVG picture: one box per forward and backward labelled with its microbatch
 * (and chunk, interleaved), a grey lane per stage so idle time shows, a legend, and the bubble fraction in the
 * title. Self-contained (no fonts or scripts), so it opens in a browser or embeds in a README.
 */
import { opLabel, type PipelinePlan } from './schedule.js';
import { describeShape } from './report.js';

const FORWARD = '#4c78a8';
const BACKWARD = '#f58518';
const LANE = '#eeeeee';

export function renderTimelineSvg(plan: PipelinePlan): string {
  const { timeline } = plan;
  const chunked = plan.shape.kind === 'interleaved-1f1b';
  const labelOf = (o: (typeof timeline.perStage)[number][number]) => opLabel(o, chunked).slice(1);
  const longest = timeline.perStage.reduce((w, ops) => ops.reduce((x, o) => Math.max(x, labelOf(o).length), w), 1);
  const unit = Math.max(18, longest * 7 + 6);
  const rowH = 26;
  const gap = 6;
  const left = 70;
  const top = 48;
  const lanes = timeline.perStage.length;
  const width = left + timeline.makespan * unit + 20;
  const legendY = top + lanes * (rowH + gap) + 14;
  const height = legendY + 30;
  const title = `${describeShape(plan)} — bubble fraction ${(100 * timeline.bubbleFraction).toFixed(1)}%`;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="24" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  );
  timeline.perStage.forEach((ops, s) => {
    const y = top + s * (rowH + gap);
    out.push(`<text x="8" y="${y + rowH / 2 + 4}" font-size="12">stage ${s}</text>`);
    out.push(
      `<rect class="idle" x="${left}" y="${y}" width="${timeline.makespan * unit}" height="${rowH}" fill="${LANE}"/>`,
    );
    for (const o of ops) {
      const x = left + o.start * unit;
      const w = (o.end - o.start) * unit;
      const fill = darken(o.op === 'forward' ? FORWARD : BACKWARD, chunked ? o.chunk / plan.shape.virtualStages : 0);
      out.push(
        `<g class="op ${o.op}"><rect x="${x + 1}" y="${y}" width="${w - 2}" height="${rowH}" rx="3" fill="${fill}"/>` +
          `<text x="${x + w / 2}" y="${y + rowH / 2 + 4}" font-size="11" fill="#ffffff" ` +
          `text-anchor="middle">${escapeXml(labelOf(o))}</text></g>`,
      );
    }
  });
  const note = chunked
    ? 'label = microbatch.chunk, later chunks darker; backward = 2 × forward'
    : 'label = microbatch; backward = 2 × forward';
  out.push(
    `<g class="legend" font-size="12">` +
      `<rect x="${left}" y="${legendY}" width="14" height="14" fill="${FORWARD}"/><text x="${left + 20}" ` +
      `y="${legendY + 12}">forward</text>` +
      `<rect x="${left + 90}" y="${legendY}" width="14" height="14" fill="${BACKWARD}"/><text ` +
      `x="${left + 110}" y="${legendY + 12}">backward</text>` +
      `<rect x="${left + 190}" y="${legendY}" width="14" height="14" fill="${LANE}" stroke="#bbbbbb"/><text ` +
      `x="${left + 210}" y="${legendY + 12}">idle</text>` +
      `<text x="${left + 260}" y="${legendY + 12}" fill="#555555">${escapeXml(note)}</text></g>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}

/** Interleaved chunks in darker shades of the same colour, so a chunk's boxes read as one band. */
function darken(hex: string, amount: number): string {
  const channel = (i: number) => Math.round(parseInt(hex.slice(i, i + 2), 16) * (1 - 0.5 * amount));
  return '#' + [1, 3, 5].map((i) => channel(i).toString(16).padStart(2, '0')).join('');
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[ch]!);
}
