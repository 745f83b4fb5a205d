// The flight recorder's cost per collective (target <= 50 ns), beside a loop without recording, in one run:
//   node scripts/bench/flight-recorder.js [--batches 2000] [--anonymous]
// Builds addon/bench/flight_recorder_bench.cc with the addon's optimisation flags (g++ -O3) and records into
// a mapped file in a temporary folder, as a launched rank does (--anonymous: the hand-run worker's memory).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const i = args.indexOf('--batches');
const batches = i >= 0 ? Number(args[i + 1]) : 2000;
if (!Number.isInteger(batches) || batches < 1) {
  console.error('usage: node scripts/bench/flight-recorder.js [--batches N] [--anonymous]');
  process.exit(2);
}
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'dtrain-flight-bench-'));
try {
  const bin = join(dir, 'flight_recorder_bench');
  execFileSync(
    process.env.CXX ?? 'g++',
    [
      '-std=c++17',
      '-O3',
      '-pthread',
      `-I${join(root, 'addon', 'src')}`,
      join(root, 'addon', 'bench', 'flight_recorder_bench.cc'),
      join(root, 'addon', 'src', 'collectives', 'flight_recorder.cc'),
      '-o',
      bin,
    ],
    { stdio: 'inherit' },
  );
  const file = args.includes('--anonymous') ? '' : join(dir, 'recorder.bin');
  execFileSync(bin, [file, String(batches)], { stdio: 'inherit' });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
