// Output integrity under load: 4 ranks × 100,000 lines on stdout and on stderr arrive whole, in order,
// prefixed, nothing lost; per-rank log files hold the raw lines; and while the launcher's stdout reader
// stalls the launcher applies backpressure instead of buffering (VmHWM < 200 MB).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { built, fixtures, startDtrain, tempDir } from '../../helpers/launch.js';

const lines = 100_000;

function vmHwmKb(pid: number): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function checkStream(t: Test, text: string, tag: 'o' | 'e'): void {
  const next = [0, 0, 0, 0];
  let bad = 0;
  const re = new RegExp(`^\\[rank (\\d)\\] ${tag}(\\d) (\\d+) x{40}$`);
  for (const line of text.split('\n')) {
    if (!line.startsWith('[rank ')) continue;
    const m = re.exec(line);
    if (!m || m[1] !== m[2] || Number(m[3]) !== next[Number(m[1])]) {
      bad++;
      continue;
    }
    next[Number(m[1])]++;
  }
  t.equal(bad, 0, `${tag}: every line whole, prefixed with its own rank, in order`);
  t.same(next, [lines, lines, lines, lines], `${tag}: nothing lost`);
}

t.test(
  '4 × 100k lines, stalled stdout reader: whole lines, nothing lost, bounded memory',
  { skip: !built() && 'run npx tsc -p . first' },
  async (t) => {
    const dir = tempDir(t);
    const run = startDtrain(
      [
        'launch',
        '--nproc-per-node',
        '4',
        '--set',
        `logs.dir=${dir}/logs`,
        '--',
        process.execPath,
        join(fixtures, 'lines.mjs'),
        String(lines),
      ],
      { cwd: dir, stdoutPipe: true },
    );
    const pid = run.child.pid!;
    let peakKb = 0;
    const sampler = setInterval(() => (peakKb = Math.max(peakKb, vmHwmKb(pid))), 50);
    // Stall: read nothing for 3 s while the workers write as fast as they can.
    run.child.stdout!.pause();
    await new Promise((r) => setTimeout(r, 3000));
    const stalledKb = vmHwmKb(pid);
    const chunks: Buffer[] = [];
    run.child.stdout!.on('data', (b: Buffer) => chunks.push(b));
    run.child.stdout!.resume();
    const r = await run.done;
    clearInterval(sampler);
    t.equal(r.code, 0, 'the job succeeded');
    checkStream(t, Buffer.concat(chunks).toString(), 'o');
    checkStream(t, r.stderr, 'e');
    t.ok(stalledKb > 0 && stalledKb < 200 * 1024, `VmHWM while stalled ${Math.round(stalledKb / 1024)} MB < 200 MB`);
    t.ok(peakKb < 200 * 1024, `VmHWM peak ${Math.round(peakKb / 1024)} MB < 200 MB`);
    const runId = readFileSync(
      join(dir, 'logs', (await import('node:fs')).readdirSync(join(dir, 'logs'))[0], 'attempt_0', 'rank_2.out'),
      'utf8',
    );
    const fileLines = runId.split('\n');
    t.equal(fileLines.length, lines + 1, 'rank_2.out holds every line');
    t.equal(fileLines[lines - 1], `o2 ${lines - 1} ${'x'.repeat(40)}`, 'raw lines, no prefix, in order');
  },
);

t.test(
  'a reader that goes away (dtrain launch | head -1) does not stop the job',
  { skip: !built() && 'run npx tsc -p . first' },
  async (t) => {
    const dir = tempDir(t);
    const run = startDtrain(
      ['launch', '--nproc-per-node', '2', '--set', `logs.dir=${dir}/logs`, '--', 'sh', '-c', 'seq 1 200000'],
      { cwd: dir, stdoutPipe: true },
    );
    run.child.stdout!.once('data', () => run.child.stdout!.destroy());
    const r = await run.done;
    t.equal(r.code, 0, r.stderr);
    const runId = (await import('node:fs')).readdirSync(join(dir, 'logs'))[0];
    t.equal(
      readFileSync(join(dir, 'logs', runId, 'attempt_0', 'rank_1.out'), 'utf8').split('\n').length,
      200001,
      'the log file still got every line',
    );
  },
);

t.test(
  'a full log disk: one line per log file says so, the workers are not held up, the job ends',
  {
    skip:
      (!built() && 'run npx tsc -p . first') ||
      (process.getuid?.() !== 0 && !process.env.DTRAIN_REQUIRE_INTEGRATION && 'needs root (a small tmpfs)'),
  },
  async (t) => {
    const dir = tempDir(t);
    const logs = mkdtempSync(join(tmpdir(), 'dtrain-test-full-logs-'));
    t.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', logs]).status, 0, 'a 64 KiB tmpfs');
    t.teardown(() => {
      spawnSync('umount', [logs]);
      rmSync(logs, { recursive: true, force: true });
    });
    // 400 KB per rank: far past the disk and the pipe, so a worker blocks for good if its lines wait on a file
    // that can no longer drain.
    const run = startDtrain(
      ['launch', '--nproc-per-node', '2', '--set', `logs.dir=${logs}`, '--', 'seq', '1', '50000'],
      { cwd: dir },
    );
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
    const r = await run.done;
    clearTimeout(timer);
    t.equal(r.code, 0, `the job finished (${r.ms} ms): ${r.stderr.slice(-2000)}`);
    for (const rank of [0, 1]) {
      t.equal(
        r.stdout.split('\n').filter((l) => l.startsWith(`[rank ${rank}] `)).length,
        50000,
        `rank ${rank}: every line`,
      );
      t.match(
        r.stderr,
        new RegExp(
          `\\[rank ${rank}\\] dtrain: cannot write \\S+/rank_${rank}\\.out \\(ENOSPC: no space left on device`,
        ),
        `rank ${rank}: its log file's failure is named once`,
      );
    }
    t.equal(r.stderr.match(/rank_0\.out \(ENOSPC/g)?.length, 1, 'said once, not once per line');
  },
);

t.test(
  'a log folder that cannot exist (under /proc): the error names logs.dir, exit 3, no hang',
  { skip: (!built() && 'run npx tsc -p . first') || (!existsSync('/proc/self') && 'needs procfs') },
  async (t) => {
    const dir = tempDir(t);
    // procfs answers ENOENT for any new name: Node's recursive mkdir retried it forever.
    const run = startDtrain(
      ['launch', '--nproc-per-node', '1', '--set', `logs.dir=/proc/dtrain-test-logs/x`, '--', 'true'],
      { cwd: dir },
    );
    const timer = setTimeout(() => run.child.kill('SIGKILL'), 20_000);
    const r = await run.done;
    clearTimeout(timer);
    t.equal(r.code, 3, `exit 3 (${r.ms} ms): ${r.stderr}`);
    t.match(r.stderr, /logs\.dir: cannot make \/proc\/dtrain-test-logs\/x\/\S+: ENOENT/);
    t.equal(r.stderr.match(/cannot make/g)?.length, 1, 'said once (the stop note names only the node)');
    t.match(r.stderr, /stopping all workers: localhost could not run its workers\n/);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  },
);
