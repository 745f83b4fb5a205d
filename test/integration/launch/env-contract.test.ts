// The worker environment contract (src/runtime/worker-env-table.ts), the store proxy reachable through DTRAIN_STORE,
// no secret in any worker's environment, per-rank log files.
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { WORKER_ENV } from '../../../src/runtime/worker-env-table.js';
import { built, fixtures, runDtrain, tempDir } from '../../helpers/launch.js';

const contract = new Set<string>(WORKER_ENV.map((v) => v.name));

t.test('4 workers get the complete environment contract', { skip: !built() && 'run npx tsc -p . first' }, async (t) => {
  const dir = tempDir(t);
  const r = await runDtrain(
    [
      'launch',
      '--nproc-per-node',
      '4',
      '--json',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      process.execPath,
      join(fixtures, 'env-dump.mjs'),
      dir,
    ],
    { cwd: dir },
  );
  t.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  t.equal(summary.exit_code, 0);
  t.same(
    summary.attempts[0].ranks.map((x: { exit_code: number }) => x.exit_code),
    [0, 0, 0, 0],
  );
  t.match(r.stderr, /\[rank 2\] rank 2 done/, 'worker stdout goes to stderr under --json');
  const envs = [0, 1, 2, 3].map((rank) => JSON.parse(readFileSync(join(dir, `env_${rank}.json`), 'utf8')));
  const ports = new Set<string>();
  for (const [rank, { env, who }] of envs.entries()) {
    t.match(env, {
      RANK: String(rank),
      LOCAL_RANK: String(rank),
      WORLD_SIZE: '4',
      LOCAL_WORLD_SIZE: '4',
      GROUP_RANK: '0',
      GROUP_WORLD_SIZE: '1',
      ROLE_RANK: String(rank),
      ROLE_WORLD_SIZE: '4',
      ROLE_NAME: 'default',
      MASTER_ADDR: '127.0.0.1',
      TORCHELASTIC_RESTART_COUNT: '0',
      TORCHELASTIC_MAX_RESTARTS: '0',
      TORCHELASTIC_RUN_ID: summary.run_id,
      DTRAIN_RUN_ID: summary.run_id,
      TORCHELASTIC_USE_AGENT_STORE: 'False',
      OMP_NUM_THREADS: '1',
      DTRAIN_NODE_RANK: '0',
      DTRAIN_DATA_RANK: String(rank),
      DTRAIN_DATA_SIZE: '4',
      DTRAIN_TENSOR_SIZE: '1',
      DTRAIN_PIPELINE_SIZE: '1',
      DTRAIN_ZERO_STAGE: '0',
      DTRAIN_COLLECTIVE_TIMEOUT: '5m',
      DTRAIN_RENDEZVOUS_TIMEOUT: '1m',
    });
    t.match(env.MASTER_PORT, /^\d+$/);
    ports.add(env.MASTER_PORT);
    t.match(env.DTRAIN_STORE, /^unix:\//);
    t.match(env.TORCHELASTIC_ERROR_FILE, new RegExp(`attempt_0/rank_${rank}\\.error\\.json$`));
    t.same(who, { attempt: 0, prefix: 'a0/' }, 'the proxy namespaces keys by attempt');
    // Everything a worker sees is the launcher's own environment or the contract: nothing else (no secret).
    const added = Object.keys(env).filter((k) => !(k in process.env) && !contract.has(k));
    t.same(added, [], 'no variable beyond the launcher environment and the contract');
  }
  t.equal(ports.size, 1, 'one MASTER_PORT for all ranks');
  const sockDir = dirname(envs[0].env.DTRAIN_STORE.slice(5));
  t.same(
    envs.map((e) => e.env.DTRAIN_STORE),
    Array(4).fill(envs[0].env.DTRAIN_STORE),
  );
  t.throws(() => statSync(sockDir), 'the proxy folder is removed after the job');
  const logDir = join(dir, 'logs', summary.run_id, 'attempt_0');
  t.equal(readFileSync(join(logDir, 'rank_3.out'), 'utf8'), 'rank 3 done\n');
  t.equal(readFileSync(join(logDir, 'rank_3.err'), 'utf8'), '');
});

t.test('the proxy folder is private while the job runs', { skip: !built() && 'run npx tsc -p . first' }, async (t) => {
  const dir = tempDir(t);
  const script =
    `const fs=require('fs');const p=process.env.DTRAIN_STORE.slice(5);const d=require('path').dirname(p);` +
    `console.log((fs.statSync(d).mode&0o777).toString(8), (fs.statSync(p).mode&0o777).toString(8))`;
  const r = await runDtrain(
    ['launch', '--nproc-per-node', '1', '--set', `logs.dir=${dir}/logs`, '--', process.execPath, '-e', script],
    { cwd: dir },
  );
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /\[rank 0\] 700 600/);
});
