// A running job seen from outside: `dtrain status --json` against a real local launch (the run found through
// the registry, pids the workers' own, progress from the PyTorch example's DTRAIN_PROGRESS_FILE and Node's
// dist.report, the slow rank flagged), `/metrics` checked by Prometheus' own promtool, the dashboard rendered
// by headless Chromium, status.json left in the log folder, and the registry entry gone at the end.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, root, runDtrain, startDtrain, tempDir } from '../../helpers/launch.js';
import { NODE_WORKER_V8_FLAGS } from '../../../src/runtime/worker-env-table.js';

/** what the agent puts between node and a Node worker's script by default */
const nodeFlags = NODE_WORKER_V8_FLAGS.join(' ');

const required = process.env.DTRAIN_REQUIRE_INTEGRATION === '1';
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const torch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

interface RankDoc {
  rank: number;
  pid: number;
  state: string;
  host: string;
  node_rank: number;
  local_rank: number;
  cpu_percent: number;
  rss_bytes: number;
  restarts: number;
  last_output_age_s: number;
  step?: number;
  samples_per_s?: number;
  compute_s?: number;
  straggler?: boolean;
}
interface StatusDoc {
  run_id: string;
  state: string;
  attempt: number;
  started_at: string;
  log_dir: string;
  monitor_url?: string;
  stragglers: number[];
  nodes: { node_rank: number; host: string; state: string }[];
  ranks: RankDoc[];
}

async function statusJson(env: Record<string, string>, run?: string): Promise<StatusDoc | undefined> {
  const r = await runDtrain(['status', ...(run ? [run] : []), '--json'], { cwd: root, env });
  return r.code === 0 ? (JSON.parse(r.stdout) as StatusDoc) : undefined;
}

/** Polls `dtrain status` until `ok` holds for the document (or the time is up). */
async function waitStatus(env: Record<string, string>, ok: (d: StatusDoc) => boolean, ms: number) {
  const end = Date.now() + ms;
  let last: StatusDoc | undefined;
  while (Date.now() < end) {
    last = await statusJson(env);
    if (last && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  return last;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

t.test(
  'dtrain status on a PyTorch job: the run, its workers, their progress, the straggler; /metrics; the page',
  { skip: (!built() && 'build first') || (!torch && !required && 'PyTorch is not installed') },
  async (t) => {
    const dir = tempDir(t, 'status');
    const env = { DTRAIN_RUNS_DIR: join(dir, 'runs') };
    const launch = startDtrain(
      [
        'launch',
        '--nproc-per-node',
        '3',
        '--monitor',
        'auto',
        '--set',
        `logs.dir=${join(dir, 'logs')}`,
        '--',
        '/usr/bin/python3',
        join(root, 'src/examples/progress/train_pytorch.py'),
        '--steps',
        '100000',
        '--slow-rank',
        '2',
      ],
      { cwd: dir, env },
    );
    t.teardown(() => {
      launch.child.kill('SIGKILL');
    });
    const doc = await waitStatus(
      env,
      (d) => d.stragglers.length > 0 && d.ranks.every((r) => r.step !== undefined && r.step > 25),
      90_000,
    );
    if (!doc) {
      launch.child.kill('SIGTERM');
      t.fail(`no status: ${(await launch.done).stderr}`);
      return;
    }
    t.match(doc, { state: 'running', attempt: 0, nodes: [{ node_rank: 0, state: 'running' }] });
    t.match(doc.run_id, /^dtrain-/);
    t.ok(Date.parse(doc.started_at) > 0, 'started_at is a time');
    t.equal(doc.ranks.length, 3);
    for (const r of doc.ranks) {
      t.match(r, { node_rank: 0, local_rank: r.rank, state: 'running', restarts: 0 }, `rank ${r.rank}`);
      t.match(cmdline(r.pid), /python3 .*train_pytorch\.py/, `rank ${r.rank}: pid ${r.pid} is the worker itself`);
      t.ok(r.rss_bytes > 10 << 20, `rank ${r.rank}: resident memory of a PyTorch process`);
      t.ok(r.cpu_percent >= 0 && typeof r.last_output_age_s === 'number');
      t.ok(r.samples_per_s! > 0 && r.compute_s! > 0, `rank ${r.rank}: speed and compute time`);
    }
    t.same(doc.stragglers, [2], 'the rank that computes 50 ms longer is the straggler');
    t.ok(doc.ranks[2].straggler);
    // by run id and by log folder too
    t.equal((await statusJson(env, doc.run_id))?.run_id, doc.run_id);
    t.equal((await statusJson(env, doc.log_dir))?.run_id, doc.run_id);
    const human = await runDtrain(['status'], { cwd: root, env });
    t.match(human.stdout, /stragglers .*ranks 2/);
    t.match(human.stdout, new RegExp(`\\b${doc.ranks[2].pid}\\b.*\\*$`, 'm'), 'the straggler row is marked');

    t.match(doc.monitor_url, /^http:\/\/127\.0\.0\.1:\d+\/$/, 'the monitor listens on loopback');
    const metrics = await (await fetch(`${doc.monitor_url}metrics`)).text();
    t.match(metrics, /^dtrain_rank_compute_seconds\{run_id="[^"]+",rank="2",host="[^"]+"\} [\d.]+$/m);
    t.match(metrics, /^dtrain_rank_straggler\{[^}]*rank="2"[^}]*\} 1$/m);
    if (has('promtool') || required) {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
      t.equal(check.status, 0, `promtool check metrics: ${check.stdout}${check.stderr}`);
    }
    if (has('chromium') || required) {
      const html = execFileSync(
        'chromium',
        ['--headless', '--no-sandbox', '--disable-gpu', '--virtual-time-budget=5000', '--dump-dom', doc.monitor_url!],
        { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] },
      );
      const rows = [...html.matchAll(/<tr[^>]*data-rank="(\d+)"[^>]*>/g)];
      t.equal(rows.length, 3, 'the page drew one row per rank from /api/status');
      t.match(html, /<tr[^>]*data-rank="2"[^>]*class="[^"]*straggler/, 'the straggler row is marked');
      t.match(html, new RegExp(`>${doc.ranks[0].pid}<`), 'pids are in the table');
      t.match(html, /<svg[^>]*id="step-chart"[\s\S]*<polyline/, 'the step time chart has a line');
      const shot = join(dir, 'page.png');
      spawnSync(
        'chromium',
        [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--virtual-time-budget=5000',
          '--window-size=1200,800',
          `--screenshot=${shot}`,
          doc.monitor_url!,
        ],
        { stdio: 'ignore', timeout: 60_000 },
      );
      const png = readFileSync(shot);
      t.equal(png.subarray(1, 4).toString(), 'PNG', 'a screenshot was taken');
      t.equal(png.readUInt32BE(16), 1200, 'of the window size');
    }

    launch.child.kill('SIGTERM');
    const end = await launch.done;
    t.equal(end.code, 143, 'stopped by SIGTERM');
    const final = JSON.parse(readFileSync(join(doc.log_dir, 'status.json'), 'utf8')) as StatusDoc;
    t.equal(final.run_id, doc.run_id, 'status.json stays in the log folder');
    t.equal(final.state, 'failed', 'with the final state');
    t.equal(final.monitor_url, undefined, 'and no monitor: it closed with the run');
    t.same(readdirSync(env.DTRAIN_RUNS_DIR), [], 'the registry entry and socket are gone');
    const after = await runDtrain(['status', '--json'], { cwd: root, env });
    t.equal(after.code, 2, 'no running job: exit 2');
    t.match(JSON.parse(after.stdout), { error: /no running dtrain job/ });
    const fromFile = await statusJson(env, doc.log_dir);
    t.equal(fromFile?.state, 'failed', 'a log folder without a live run: its status.json');
  },
);

t.test(
  'a Node worker reports through dist.report; a monitor on another host needs a token file',
  { skip: !built() && 'build first' },
  async (t) => {
    const dir = tempDir(t, 'status-node');
    const env = { DTRAIN_RUNS_DIR: join(dir, 'runs') };
    const prog = join(dir, 'prog.mjs');
    writeFileSync(
      prog,
      `import { init } from ${JSON.stringify(join(root, 'dist/runtime/index.js'))};\n` +
        `const dist = await init();\n` +
        `const buf = new Float32Array(256);\n` +
        `for (let step = 1; ; step++) {\n` +
        `  const t0 = Date.now(); while (Date.now() - t0 < 20) {}\n` +
        `  await dist.groups.world.allReduce(buf);\n` +
        `  dist.report({ step, loss: 1 / step, samples: 4, tokens: 64 });\n` +
        `}\n`,
    );
    const launch = startDtrain(
      ['launch', '--nproc-per-node', '2', '--set', `logs.dir=${join(dir, 'logs')}`, '--', 'node', prog],
      { cwd: dir, env },
    );
    t.teardown(() => launch.child.kill('SIGKILL'));
    const doc = await waitStatus(env, (d) => d.ranks.every((r) => (r.step ?? 0) > 25), 60_000);
    t.ok(doc, 'status answered');
    for (const r of doc?.ranks ?? []) {
      t.match(
        cmdline(r.pid),
        new RegExp(`^node ${nodeFlags} ${prog}`),
        `rank ${r.rank}: pid ${r.pid} is the worker itself`,
      );
      t.match(r, { loss: Number, tokens_per_s: Number, samples_per_s: Number, compute_s: Number });
    }
    const metrics = await runDtrain(['status', '--json'], { cwd: root, env });
    t.equal(metrics.code, 0);
    launch.child.kill('SIGTERM');
    await launch.done;

    writeFileSync(join(dir, 'cfg.yaml'), 'entrypoint: "true"\nmonitor: {host: 0.0.0.0}\n');
    const bad = await runDtrain(['validate', 'cfg.yaml'], { cwd: dir, env });
    t.equal(bad.code, 2);
    t.match(
      bad.stderr,
      /cfg\.yaml:2:\d+: monitor\.host: 0\.0\.0\.0 is not a loopback address: set monitor\.token_file/,
    );
    t.notOk(existsSync(join(dir, 'runs')) && readdirSync(join(dir, 'runs')).length, 'nothing registered');
  },
);
