/**
 * The one duration grammar (config values, --set, and the worker environment): 30s, 5m, 1h, 250ms, units
 * combined (1h30m), or a plain number of seconds. formatDuration writes what parseDuration reads back exactly.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * The longest duration a config may give: Node's timers wait at most 2^31-1 ms (24.8 days) and fire at
 * once beyond it, so a grace of 99999999h would have been 1 ms.
 */
export const MAX_DURATION_MS = 596 * 3_600_000;

/** The config schema's pattern for a duration string (plain numbers are the schema's `number` branch). */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';

/** Milliseconds, or undefined when the text is not a duration. */
export function parseDuration(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : undefined;
  const text = value.trim();
  if (/^[0-9]+(\.[0-9]+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!new RegExp(DURATION_PATTERN).test(text)) return undefined;
  const parts = [...text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)];
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_MS[p[2]], 0));
}

/** The shortest exact spelling: 90000 → "90s", 3600000 → "1h", 1500 → "1500ms". */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
