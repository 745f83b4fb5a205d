#!/usr/bin/env node
// Regenerates the figures of docs/performance.md: runs the benchmarks, each against its reference in the same
// run, and writes docs/perf/<figure>.svg, docs/perf/<figure>.json (the results behind the table) and the
// generated part of the document (between its markers; the hand-written text around it stays).
//
//   node scripts/bench/performance.mjs [--only a,b,c,d,e,f] [--quick] [--doc docs/performance.md]
//        [--figures docs/perf]
//
//   a  local launch time vs workers, dtrain launch against mpirun (both running /bin/true)
//   b  SSH launch vs netns hosts against pdsh, and the controller's CPU per host (ssh-launch.sh)
//   c  all-reduce busbw vs size against OpenMPI (C) and PyTorch Gloo (collectives.mjs)
//   d  hierarchical vs flat across netns hosts rate-limited to 1 and 10 Gbit/s, against OpenMPI over TCP
//      (hierarchical.sh)
//   e  store rendezvous time vs clients against TCPStore and etcd (store-rendezvous.mjs, when present)
//   f  training throughput vs world against PyTorch DDP (train-vs-torch.mjs)
//
// --quick: few sizes and runs, to check the pipeline; the document then says "quick run, not for quoting".
// --render-only: no benchmarks; redraws the figures and sections from the results saved in docs/perf/*.json.
// A run of some figures (--only) keeps the others' sections as they were. Needs root (mpirun, network
// namespaces), a build (npm run build) and the references: mpicc/mpirun, pdsh, hyperfine, python3 with torch.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fmt, markdownTable, renderSection, summarizeTimes, updateSections } from './perf-doc.mjs';
import { formatBytes, lineChart } from './svg-chart.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const FIGURES = ['a', 'b', 'c', 'd', 'e', 'f'];

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: FIGURES.join(',') },
    quick: { type: 'boolean', default: false },
    doc: { type: 'string', default: join(root, 'docs/performance.md') },
    figures: { type: 'string', default: join(root, 'docs/perf') },
    'render-only': { type: 'boolean', default: false },
  },
});
const only = values.only.split(',').map((s) => s.trim());
for (const id of only)
  if (!FIGURES.includes(id)) {
    console.error(`performance: --only: unknown figure '${id}' (${FIGURES.join(', ')})`);
    process.exit(2);
  }
const quick = values.quick;
const work = mkdtempSync(join(tmpdir(), 'dtrain-bench-performance-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// ---------------------------------------------------------------- running things

const machine = () => ({ cores: cpus().length, cpu: cpus()[0]?.model?.trim() ?? '?' });
const load = () => loadavg().map((l) => +l.toFixed(2));
const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** The CPU time (ms) of this process's waited-for children so far: /proc/self/stat cutime + cstime. */
function childrenCpuMs() {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100; // USER_HZ is 100 on Linux
}

/** Runs a command to completion; throws with its tail on failure. Returns stdout. */
function run(argv, { env = {}, cwd = root, timeout = 3_600_000 } = {}) {
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout,
    maxBuffer: 256 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.status !== 0)
    throw new Error(`${argv.join(' ')} failed (${r.status ?? r.signal}):\n${`${r.stdout}${r.stderr}`.slice(-2000)}`);
  return r.stdout;
}

/** Runs one figure's benchmark between the machine's description before and after. */
function measured(command, fn) {
  const before = load();
  const started = stamp();
  console.error(`performance: ${command}`);
  const result = fn();
  return {
    result,
    run: {
      command,
      started,
      finished: stamp(),
      quick,
      machine: { ...machine(), load_before: before, load_after: load() },
    },
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------- the figures

/** (a) `dtrain launch` of N /bin/true workers against `mpirun -np N /bin/true`, alternating, timed here. */
function figureLaunch() {
  const workers = quick ? [4, 64, 256] : [4, 16, 64, 256];
  const runs = quick ? 2 : 20;
  const RUN_LIMIT_MS = 60_000;
  const command = `node scripts/bench/performance.mjs --only a${quick ? ' --quick' : ''}`;
  return measured(command, () => {
    const rows = [];
    for (const n of workers) {
      const argv = {
        mpirun: ['mpirun', '--allow-run-as-root', '--oversubscribe', '-np', String(n), '/bin/true'],
        dtrain: [
          join(root, 'bin/dtrain'),
          'launch',
          '--nproc-per-node',
          String(n),
          '--set',
          `logs.dir=${join(work, 'launch-logs')}`,
          '--',
          '/bin/true',
        ],
      };
      const samples = { mpirun: [], dtrain: [] };
      const cpu = { mpirun: [], dtrain: [] };
      // A run that outlives the limit is killed and counted, not timed: mpirun has been seen to hang here with
      // many fast-exiting ranks.
      const once = (impl) => {
        const c0 = childrenCpuMs();
        const t0 = process.hrtime.bigint();
        const r = spawnSync(argv[impl][0], argv[impl].slice(1), {
          cwd: work,
          stdio: 'ignore',
          timeout: RUN_LIMIT_MS,
          killSignal: 'SIGKILL',
        });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (r.error?.code === 'ETIMEDOUT') return null;
        if (r.status !== 0) throw new Error(`${argv[impl].join(' ')} failed (${r.status ?? r.signal})`);
        return { ms, cpu: childrenCpuMs() - c0 };
      };
      const timedOut = { mpirun: 0, dtrain: 0 };
      const pairs = [];
      once('mpirun');
      once('dtrain');
      for (let r = 0; r < runs; r++) {
        const pair = {};
        for (const impl of r % 2 ? ['dtrain', 'mpirun'] : ['mpirun', 'dtrain']) {
          const x = once(impl);
          if (!x) {
            timedOut[impl]++;
            continue;
          }
          samples[impl].push(x.ms);
          cpu[impl].push(x.cpu);
          pair[impl] = x.ms;
        }
        if (pair.mpirun && pair.dtrain) pairs.push(pair.dtrain / pair.mpirun);
      }
      for (const impl of ['dtrain', 'mpirun'])
        rows.push({
          impl,
          workers: n,
          ...summarizeTimes(samples[impl]),
          cpu_ms: summarizeTimes(cpu[impl]).mean,
          runs_ms: samples[impl],
          timed_out: timedOut[impl],
          ratio_vs_mpirun: impl === 'dtrain' ? median(pairs) : 1,
        });
    }
    return { runs, rows };
  });
}

function renderLaunch({ result }) {
  const names = { dtrain: 'dtrain launch', mpirun: 'mpirun (OpenMPI)' };
  const svg = lineChart({
    title: 'Local launch of N /bin/true workers',
    x: { label: 'workers', log: true, ticks: [4, 16, 64, 256] },
    y: { label: 'wall time per launch, mean (ms)' },
    series: ['dtrain', 'mpirun'].map((impl) => ({
      name: names[impl],
      points: result.rows.filter((r) => r.impl === impl).map((r) => [r.workers, r.mean]),
    })),
  });
  const table = markdownTable(
    ['impl', 'workers', 'runs', 'timed out', 'mean ms', 'p50 ms', 'p99 ms', 'CPU ms per launch', 'ratio to mpirun'],
    result.rows.map((r) => [
      names[r.impl],
      r.workers,
      r.n,
      r.timed_out ?? 0,
      fmt(r.mean),
      fmt(r.p50),
      fmt(r.p99),
      fmt(r.cpu_ms),
      r.impl === 'dtrain' ? `${fmt(r.ratio_vs_mpirun)}×` : '',
    ]),
  );
  return {
    svg,
    reference: 'mpirun ran in the same run, alternating with dtrain run by run.',
    table,
    notes: [
      `${result.runs} runs of each per count of workers, alternating, after one warm-up each: ` +
        '`dtrain launch --nproc-per-node N -- /bin/true` (the controller, its in-process agent and supervision, as ' +
        'users run it through `bin/dtrain`) against `mpirun --allow-run-as-root --oversubscribe -np N /bin/true`; ' +
        'each run timed from spawn to exit by the generator, CPU of the whole process tree from the kernel ' +
        "(children's user + system time). The ratio is the median of the per-pair ratios. A run still going " +
        'after 60 s is killed and counted under "timed out", not timed (mpirun has hung here with 256 ranks).',
    ],
  };
}

/** (b) scripts/bench/ssh-launch.sh at each host count (plain login), its JSON lines. */
function figureSsh() {
  const hosts = quick ? [8] : [8, 16, 32, 64];
  const runs = quick ? 3 : 10;
  const command = hosts.map((h) => `scripts/bench/ssh-launch.sh ${h} ${runs} plain`).join('; ');
  return measured(command, () => {
    const file = join(work, 'ssh.jsonl');
    for (const h of hosts)
      run(['bash', 'scripts/bench/ssh-launch.sh', String(h), String(runs), 'plain'], {
        env: { DTRAIN_BENCH_JSON: file },
      });
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const rows = lines.map((l) => {
      const ms = (xs) => summarizeTimes(xs.map((x) => x * 1000));
      return {
        hosts: l.hosts,
        pdsh: ms(l.seconds.pdsh),
        launch: ms(l.seconds.launch),
        spawner: ms(l.seconds.spawner),
        // hyperfine runs each command's runs back to back: no pairs to take ratios of, so the medians' ratio
        ratio: median(l.seconds.launch) / median(l.seconds.pdsh),
        controller_cpu_ms_per_host: l.controller_cpu_ms_per_host,
        cpu_all_ms: l.cpu_all_ms,
      };
    });
    return { runs, rows };
  });
}

function renderSsh({ result }) {
  const rows = result.rows;
  const hostTicks = rows.map((r) => r.hosts);
  const svg = lineChart({
    title: 'Launch over SSH: one node -e 0 worker per netns host',
    x: { label: 'hosts', log: true, ticks: hostTicks },
    y: { label: 'wall time per launch, mean (ms)' },
    series: [
      { name: 'dtrain launch', points: rows.map((r) => [r.hosts, r.launch.mean]) },
      { name: 'dtrain SSH spawner alone', points: rows.map((r) => [r.hosts, r.spawner.mean]) },
      { name: 'pdsh -R ssh', points: rows.map((r) => [r.hosts, r.pdsh.mean]) },
    ],
  });
  const cpuSvg = lineChart({
    title: "Launch over SSH: the launching process's CPU per host",
    x: { label: 'hosts', log: true, ticks: hostTicks },
    y: { label: 'CPU ms per host (its own process tree)' },
    series: [
      { name: 'dtrain launch (controller)', points: rows.map((r) => [r.hosts, r.controller_cpu_ms_per_host.launch]) },
      { name: 'pdsh + its ssh clients', points: rows.map((r) => [r.hosts, r.controller_cpu_ms_per_host.pdsh]) },
    ],
  });
  const table = markdownTable(
    ['hosts', 'impl', 'mean ms', 'p50 ms', 'p99 ms', 'launcher CPU ms/host', 'all CPU ms/run', 'ratio to pdsh'],
    rows.flatMap((r) => [
      [
        r.hosts,
        'dtrain launch',
        fmt(r.launch.mean),
        fmt(r.launch.p50),
        fmt(r.launch.p99),
        fmt(r.controller_cpu_ms_per_host.launch),
        fmt(r.cpu_all_ms.launch),
        `${fmt(r.ratio)}×`,
      ],
      [r.hosts, 'dtrain SSH spawner alone', fmt(r.spawner.mean), fmt(r.spawner.p50), fmt(r.spawner.p99), '', '', ''],
      [
        r.hosts,
        'pdsh -R ssh',
        fmt(r.pdsh.mean),
        fmt(r.pdsh.p50),
        fmt(r.pdsh.p99),
        fmt(r.controller_cpu_ms_per_host.pdsh),
        fmt(r.cpu_all_ms.pdsh),
        '',
      ],
    ]),
  );
  return {
    svg,
    reference:
      "pdsh ran in the same hyperfine run as dtrain, on the same testbed (hyperfine runs each command's runs " +
      'back to back, one command after the other).',
    extra: { name: 'b-ssh-launch-cpu', svg: cpuSvg, alt: 'launcher CPU per host vs hosts' },
    table,
    notes: [
      `hyperfine, ${result.runs} runs after 2 warm-ups, the three commands in one run per host count; every host ` +
        "is a network namespace with its own sshd on this machine (plain login: root's ~/.bashrc empty in the " +
        'sessions), so all hosts share its cores: the wall time here adds up what separate hosts would do in ' +
        'parallel. Launcher CPU per host: the launching process tree (dtrain: the controller; pdsh: pdsh and its ' +
        'ssh clients) from /usr/bin/time over 5 runs, divided by the host count. Ratio: the median of dtrain ' +
        "launch's runs over pdsh's.",
    ],
  };
}

/**
 * (c) scripts/bench/collectives.mjs --json: dtrain (dist.alloc) against OpenMPI (C) and Gloo, with dtrain's
 * one-step exchange in plain C as the hardware's price of the small all-reduce.
 */
function figureCollectives() {
  const sizes = quick ? '4KiB,1MiB,16MiB' : '4KiB,64KiB,1MiB,16MiB,256MiB';
  const impls = 'dtrain-alloc,openmpi-c,gloo,one-step-c';
  const args = ['--json', '--impls', impls, '--sizes', sizes, '--rounds', quick ? '2' : '10'];
  if (quick) args.push('--max-ops', '2000');
  const command = `node scripts/bench/collectives.mjs ${args.join(' ')}`;
  return measured(command, () => JSON.parse(run([process.execPath, 'scripts/bench/collectives.mjs', ...args])));
}

/** ['a', 'b', 'c'] → 'a, b and c' */
const inWords = (items) => (items.length > 1 ? `${items.slice(0, -1).join(', ')} and ${items.at(-1)}` : items[0]);

function renderCollectives({ result }) {
  const names = {
    'dtrain-alloc': 'dtrain (dist.alloc)',
    'openmpi-c': 'OpenMPI (C)',
    gloo: 'PyTorch Gloo',
    'one-step-c': 'one-step exchange in C',
  };
  const impls = [...new Set(result.rows.map((r) => r.impl))];
  const sizes = [...new Set(result.rows.map((r) => r.bytes))];
  const svg = lineChart({
    title: 'All-reduce, float32 sum, 2 ranks on one host',
    x: { label: 'message size', log: true, ticks: sizes, format: formatBytes },
    y: { label: 'bus bandwidth from the mean op time (GB/s)', log: true },
    series: impls.map((impl) => ({
      name: names[impl] ?? impl,
      points: result.rows.filter((r) => r.impl === impl).map((r) => [r.bytes, r.busbw_GBps]),
    })),
  });
  const table = markdownTable(
    ['impl', 'size', 'ops', 'mean µs', 'p50 µs', 'p99 µs', 'CPU µs/op', 'busbw GB/s', 'busbw vs OpenMPI'],
    result.rows.map((r) => {
      const ratio = result.ratios.find((x) => x.impl === r.impl && x.bytes === r.bytes);
      return [
        names[r.impl] ?? r.impl,
        formatBytes(r.bytes),
        r.ops.toLocaleString('en-US'),
        fmt(r.mean_us),
        fmt(r.p50_us),
        fmt(r.p99_us),
        fmt(r.cpu_us_per_op),
        fmt(r.busbw_GBps),
        ratio ? `${fmt(ratio.busbw_vs_openmpi_c)}×` : '',
      ];
    }),
  );
  return {
    svg,
    reference:
      `${inWords(impls.filter((i) => i !== 'dtrain-alloc').map((i) => names[i] ?? i))} ran in the same run, ` +
      'alternating with dtrain (the order reverses every other round).',
    table,
    notes: [
      `${result.rounds} alternating rounds; every op timed; busbw = size / mean op time (2 ranks: busbw = algbw). ` +
        'dtrain runs under `dtrain bench` (controller, agent and supervisor up); the ratio is the median of the ' +
        'per-round ratios. See "Method" above for the statistics.' +
        (impls.includes('one-step-c')
          ? ' "One-step exchange in C" (scripts/bench/allreduce-shm-c.c) is the algorithm of dtrain\'s small ' +
            'all-reduce with no API around it (copy in, publish, wait, reduce both slots): up to 32 KiB it is what ' +
            'that exchange costs this machine; above, dtrain uses other algorithms and it is only a point of ' +
            'comparison.'
          : ''),
    ],
  };
}

/** (d) scripts/bench/hierarchical.sh at 1 and 10 Gbit/s, 2 and 4 hosts, with OpenMPI over TCP. */
function figureHierarchical() {
  const rates = quick ? ['1gbit'] : ['1gbit', '10gbit'];
  const layouts = quick ? ['2,2'] : ['2,2', '2,2,2,2'];
  const iters = quick ? 2 : 8;
  const runs = rates.flatMap((rate) => layouts.map((slots) => ({ rate, slots })));
  const command = runs
    .map((r) => `DTRAIN_BENCH_OPENMPI=1 scripts/bench/hierarchical.sh ${r.rate} ${iters} ${r.slots} all_reduce`)
    .join('; ');
  return measured(command, () =>
    runs.map(({ rate, slots }) => {
      const file = join(work, `hier-${rate}-${slots}.json`);
      run(['bash', 'scripts/bench/hierarchical.sh', rate, String(iters), slots, 'all_reduce'], {
        env: { DTRAIN_BENCH_OPENMPI: '1', DTRAIN_BENCH_JSON: file },
      });
      return JSON.parse(readFileSync(file, 'utf8'));
    }),
  );
}

function renderHierarchical({ result }) {
  const layouts = [...new Set(result.map((r) => r.slots))];
  const big = (r) => r.rows.find((x) => x.bytes === 16777216);
  const hostsOf = (slots) => `${slots.split(',').length} hosts`;
  const series = layouts.flatMap((slots) => {
    const runs = result.filter((r) => r.slots === slots);
    const line = (name, key) => ({
      name: `${name}, ${hostsOf(slots)}`,
      points: runs.map((r) => [r.achieved_gbit, big(r)?.[key]]).filter(([, y]) => y !== null && y !== undefined),
    });
    return [line('flat', 'flat_ms'), line('hierarchical', 'hierarchical_ms'), line('OpenMPI TCP', 'openmpi_tcp_ms')];
  });
  const svg = lineChart({
    title: '16 MiB all-reduce across rate-limited netns hosts (2 ranks each)',
    x: { label: 'rate achieved by one TCP stream (Gbit/s)', log: true },
    y: { label: 'ms per all-reduce, mean', log: true },
    series: series.filter((s) => s.points.length),
  });
  const table = markdownTable(
    ['limit', 'achieved Gbit/s', 'ranks per host', 'size', 'flat ms', 'hierarchical ms', 'speed-up', 'OpenMPI TCP ms'],
    result.flatMap((r) =>
      r.rows.map((x) => [
        r.rate,
        fmt(r.achieved_gbit),
        r.slots,
        formatBytes(x.bytes),
        fmt(x.flat_ms),
        fmt(x.hierarchical_ms),
        `${fmt(x.flat_ms / x.hierarchical_ms)}×`,
        x.openmpi_tcp_ms === null ? 'failed' : fmt(x.openmpi_tcp_ms),
      ]),
    ),
  );
  const failures = result.filter((r) => r.openmpi_error);
  return {
    svg,
    reference:
      'At each rate and host count, flat, hierarchical and OpenMPI ran one after the other on the same testbed, ' +
      'in the same run.',
    table,
    notes: [
      `Mean of ${result[0]?.iters} ops per size (\`dtrain bench\`'s time_us; OpenMPI's ` +
        "per-op samples summarised with bench-stats.ts). Every host's egress goes through a tbf qdisc at the " +
        'limit; the achieved rate is one TCP stream of 64 MiB from host 1 to host 2. Flat: one TCP ring over all ' +
        'ranks (DTRAIN_HIERARCHICAL=0); hierarchical: shared memory within a host, TCP between hosts. OpenMPI: ' +
        '`mpirun` starting its daemons over the testbed\'s SSH (`--mca plm_rsh_args "-F <testbed ssh_config>"`), ' +
        'btl self,vader,tcp on the testbed subnet, allreduce-mpi.c.',
      ...failures.map(
        (r) =>
          `OpenMPI over TCP failed at ${r.rate}, ${r.slots}: \`${r.openmpi_error.replace(/\s+/g, ' ').slice(0, 400)}\``,
      ),
    ],
  };
}

/** (e) scripts/bench/store-rendezvous.mjs --json, when the script exists. */
const storeScript = join(root, 'scripts/bench/store-rendezvous.mjs');
function figureStore() {
  const args = ['--json', '--impls', 'dtrain,tcpstore,etcd,bare'];
  args.push('--sizes', quick ? '100,1000' : '100,1000,3000,10000', '--repeats', quick ? '2' : '5');
  const command = `node scripts/bench/store-rendezvous.mjs ${args.join(' ')}`;
  return measured(command, () => JSON.parse(run([process.execPath, storeScript, ...args])));
}

function renderStore({ result }) {
  const names = {
    dtrain: 'dtrain store',
    tcpstore: `PyTorch ${result.versions?.torch ?? ''} TCPStore`,
    etcd: `etcd ${result.versions?.etcd ?? ''}`,
    bare: 'plain Node sockets (the floor)',
  };
  const impls = [...new Set(result.rows.map((r) => r.impl))];
  const clients = [...new Set(result.rows.map((r) => r.clients))];
  const svg = lineChart({
    title: 'Store rendezvous: N clients join and wait for all',
    x: { label: 'clients', log: true, ticks: clients },
    y: { label: 'time to rendezvous, mean (ms)', log: true },
    series: impls.map((impl) => ({
      name: (names[impl] ?? impl).trim(),
      points: result.rows
        .filter((r) => r.impl === impl && Number.isFinite(r.mean_ms))
        .map((r) => [r.clients, r.mean_ms]),
    })),
  });
  const table = markdownTable(
    ['impl', 'clients', 'repeats', 'mean ms', 'p50 ms', 'p99 ms', 'error'],
    result.rows.map((r) => [
      (names[r.impl] ?? r.impl).trim(),
      r.clients,
      r.repeats,
      fmt(r.mean_ms),
      fmt(r.p50_ms),
      fmt(r.p99_ms),
      r.error ?? '',
    ]),
  );
  return {
    svg,
    reference:
      `${inWords(impls.filter((i) => i !== 'dtrain').map((i) => (names[i] ?? i).trim()))} ran in the same run, ` +
      'alternating with dtrain (the order reverses every repeat).',
    table,
    notes: [
      `Clients in ${result.procs} processes; ${result.repeats} repeat${result.repeats === 1 ? '' : 's'}, ` +
        'implementations alternating, a fresh server per repeat (the method is in the header of ' +
        "scripts/bench/store-rendezvous.mjs). TCPStore is the one Debian's python3-torch ships; etcd is Debian's " +
        'etcd-server.',
      ...(impls.includes('bare')
        ? [
            'Plain Node sockets make the same exchanges (hello, challenge, proof with SET and ADD, GET) with the ' +
              "same writes and nothing else: no authentication, framing or store state. Its time is what Node's " +
              "socket layer costs on this machine; dtrain's time beyond it is the store's own work.",
          ]
        : []),
    ],
  };
}

/** (f) scripts/bench/train-vs-torch.mjs --json. */
function figureTrain() {
  const args = ['--json', '--worlds', quick ? '1,2' : '1,2,4', '--rounds', quick ? '1' : '3'];
  if (quick) args.push('--steps', '200', '--warmup', '50');
  const command = `node scripts/bench/train-vs-torch.mjs ${args.join(' ')}`;
  return measured(command, () => JSON.parse(run([process.execPath, 'scripts/bench/train-vs-torch.mjs', ...args])));
}

function renderTrain({ result }) {
  const worlds = result.results.map((r) => r.world);
  const svg = lineChart({
    title: `Training throughput, example MLP (${result.layers} layers, hidden ${result.hidden})`,
    x: { label: 'world size (ranks)', log: true, ticks: worlds },
    y: { label: 'samples/s, mean over rounds' },
    series: [
      { name: 'dtrain', points: result.results.map((r) => [r.world, r.dtrain.samplesPerSecondMean]) },
      { name: 'PyTorch DDP (gloo)', points: result.results.map((r) => [r.world, r.torch.samplesPerSecondMean]) },
    ],
  });
  const table = markdownTable(
    [
      'world',
      'impl',
      'samples/s mean',
      'samples/s p50',
      'CPU/wall per rank',
      'CPU ms / 1k samples',
      'final loss',
      'eval loss',
      'ratio',
    ],
    result.results.flatMap((r) => [
      [
        r.world,
        'dtrain',
        fmt(r.dtrain.samplesPerSecondMean),
        fmt(r.dtrain.samplesPerSecondP50),
        fmt(r.dtrain.cpuPerWallPerRank),
        fmt(r.dtrain.cpuMsPer1kSamples),
        fmt(r.dtrain.loss),
        fmt(r.dtrain.evalLoss),
        `${fmt(r.ratio)}×`,
      ],
      [
        r.world,
        'PyTorch DDP',
        fmt(r.torch.samplesPerSecondMean),
        fmt(r.torch.samplesPerSecondP50),
        fmt(r.torch.cpuPerWallPerRank),
        fmt(r.torch.cpuMsPer1kSamples),
        fmt(r.torch.loss),
        fmt(r.torch.evalLoss),
        '',
      ],
    ]),
  );
  return {
    svg,
    reference: 'PyTorch DDP ran in the same run, alternating with dtrain (dtrain first in even rounds).',
    table,
    notes: [
      `Global batch ${result.globalBatch} split over the ranks, ${result.steps} steps of which the first ` +
        `${result.warmup ?? 0} run untimed, ${result.rounds} alternating ` +
        'rounds, one thread per rank; the ratio is the median of per-round ratios (the method is in the header of ' +
        'scripts/bench/train-vs-torch.mjs).',
    ],
  };
}

const figures = {
  a: {
    heading: '(a) Local launch time vs workers, against mpirun',
    name: 'a-local-launch',
    run: figureLaunch,
    render: renderLaunch,
  },
  b: { heading: '(b) SSH launch vs hosts, against pdsh', name: 'b-ssh-launch', run: figureSsh, render: renderSsh },
  c: {
    heading: '(c) All-reduce bus bandwidth vs size, against OpenMPI and Gloo',
    name: 'c-allreduce-busbw',
    run: figureCollectives,
    render: renderCollectives,
  },
  d: {
    heading: '(d) Hierarchical vs flat across rate-limited hosts, against OpenMPI over TCP',
    name: 'd-hierarchical',
    run: figureHierarchical,
    render: renderHierarchical,
  },
  e: {
    heading: '(e) Store rendezvous vs clients, against TCPStore and etcd',
    name: 'e-store-rendezvous',
    run: figureStore,
    render: renderStore,
    skip: () =>
      existsSync(storeScript) ? null : 'not present (scripts/bench/store-rendezvous.mjs is absent in this checkout).',
  },
  f: {
    heading: '(f) Training throughput vs world, against PyTorch DDP',
    name: 'f-train-throughput',
    run: figureTrain,
    render: renderTrain,
  },
};

// ---------------------------------------------------------------- the document

const docPath = values.doc;
const figDir = values.figures;
mkdirSync(figDir, { recursive: true });
const relFig = (file) => relative(join(docPath, '..'), join(figDir, file));
const updates = new Map();
let failed = 0;
for (const id of only) {
  const f = figures[id];
  const skipped = values['render-only'] ? null : f.skip?.();
  if (skipped) {
    console.error(`performance: (${id}) skipped: ${skipped}`);
    updates.set(id, renderSection({ heading: f.heading, skipped }));
    continue;
  }
  try {
    const saved = join(figDir, `${f.name}.json`);
    const measuredRun = values['render-only'] ? JSON.parse(readFileSync(saved, 'utf8')) : f.run();
    const out = f.render(measuredRun);
    writeFileSync(join(figDir, `${f.name}.svg`), out.svg);
    writeFileSync(saved, JSON.stringify(measuredRun, null, 2) + '\n');
    const notes = [...out.notes];
    if (out.extra) {
      writeFileSync(join(figDir, `${out.extra.name}.svg`), out.extra.svg);
      notes.unshift(`![${out.extra.alt}](${relFig(`${out.extra.name}.svg`)})`);
    }
    updates.set(
      id,
      renderSection({
        heading: f.heading,
        run: measuredRun.run,
        svgPath: relFig(`${f.name}.svg`),
        table: out.table,
        notes,
        reference: out.reference,
      }),
    );
  } catch (err) {
    failed++;
    console.error(`performance: (${id}) failed: ${err.message}`);
    updates.set(id, renderSection({ heading: f.heading, skipped: `the run failed: ${err.message.split('\n')[0]}` }));
  }
}

const intro =
  '_Written by `node scripts/bench/performance.mjs`; do not edit by hand. Each figure says when, how and on\n' +
  'what machine it was run._';
const doc = readFileSync(docPath, 'utf8');
writeFileSync(
  docPath,
  updateSections(doc, intro, FIGURES, updates, (id) =>
    renderSection({
      heading: figures[id].heading,
      pending: `\`node scripts/bench/performance.mjs --only ${id}\``,
    }),
  ),
);
console.error(`performance: wrote ${relative(root, docPath)} and ${relative(root, figDir)}/`);
process.exit(failed ? 1 : 0);
