/**
 * Time limits as the config writes them (Slurm's syntax: minutes, [d-]h:m:s, m:s) converted to seconds
 * and to PBS's walltime (hours:minutes:seconds, hours may exceed 24).
 */

/** Slurm time syntax → seconds. Accepts what the schema's pattern accepts: "90", "2:00:00", "1-00:00:00", "1-2". */
export function slurmTimeToSeconds(time: string): number {
  const m = /^(?:([0-9]+)-)?([0-9]+)(?::([0-9]+))?(?::([0-9]+))?$/.exec(time);
  if (!m) throw new Error(`not a Slurm time limit: ${time}`);
  const [, days, a, b, c] = m;
  const d = days ? Number(days) : 0;
  const nums = [a, b, c].filter((x) => x !== undefined).map(Number);
  if (days) {
    // with days: "d-h", "d-h:m", "d-h:m:s"
    const [h = 0, min = 0, s = 0] = nums;
    return ((d * 24 + h) * 60 + min) * 60 + s;
  }
  // without days: "m", "m:s", "h:m:s"
  if (nums.length === 1) return nums[0] * 60;
  if (nums.length === 2) return nums[0] * 60 + nums[1];
  return (nums[0] * 60 + nums[1]) * 60 + nums[2];
}

export function pbsWalltime(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(h)}:${two(m)}:${two(s)}`;
}
