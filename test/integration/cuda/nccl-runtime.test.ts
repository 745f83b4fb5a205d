// The NCCL backend's code paths on a machine without a GPU, with real worker processes, a real store and a
// stand-in libnccl (built here with g++, loaded through DTRAIN_NCCL_PATH): init() loads the CUDA part and
// NCCL, rank 0 makes the unique id and publishes it through the store, the other ranks fetch it, and every
// rank reaches communicator init on its communicator's thread, where the first CUDA call fails with a clear
// error (no driver). What happens after that first CUDA call needs a GPU: scripts/gpu/run.sh.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { cudaBuildInfo } from '../../../src/runtime/device/cuda-part.js';
import { runLocalJob } from '../../../src/runtime/local-job.js';

const root = join(import.meta.dirname, '..', '..', '..');
const distIndex = join(root, 'dist/runtime/index.js');
const worker = join(root, 'test/fixtures/cuda/nccl-init-worker.mjs');
const skip = !cudaBuildInfo().built
  ? 'the CUDA part is not built (no nvcc)'
  : !existsSync(distIndex)
    ? 'run npx tsc -p . first'
    : false;

/** A stand-in NCCL 2.23.4: a working ncclGetUniqueId (or a failing one), every other call fails. */
function standInNccl(dir: string, uniqueIdWorks: boolean): string {
  const fails = [
    'ncclCommInitRank',
    'ncclCommSplit',
    'ncclCommDestroy',
    'ncclCommAbort',
    'ncclCommGetAsyncError',
    'ncclAllReduce',
    'ncclReduceScatter',
    'ncclAllGather',
    'ncclBroadcast',
    'ncclSend',
    'ncclRecv',
    'ncclGroupStart',
    'ncclGroupEnd',
  ];
  const src = `#include <string.h>
extern "C" {
int ncclGetVersion(int* v) { *v = 22304; return 0; }
const char* ncclGetErrorString(int) { return "stand-in NCCL"; }
int ncclGetUniqueId(char* id) { memset(id, 7, 128); return ${uniqueIdWorks ? 0 : 5}; }
${fails.map((f) => `int ${f}() { return 5; }`).join('\n')}
}`;
  const file = join(dir, `standin-${uniqueIdWorks}.cc`);
  writeFileSync(file, src);
  const lib = join(dir, `libnccl-standin-${uniqueIdWorks}.so`);
  execFileSync('g++', ['-shared', '-fPIC', '-o', lib, file]);
  return lib;
}

interface Report {
  rank: number;
  ok: boolean;
  name?: string;
  message?: string;
}

async function job(
  nodes: number[],
  env: Record<string, string>,
): Promise<{ reports: Report[]; codes: (number | null)[] }> {
  const out = new Map<number, string>();
  const exits = await runLocalJob({
    nodes,
    argv: [process.execPath, worker],
    env: { DTRAIN_BACKEND: 'nccl', DTRAIN_DIST_INDEX: distIndex, ...env },
    onStdout: (rank, chunk) => out.set(rank, (out.get(rank) ?? '') + chunk),
  });
  const reports = [...out.entries()].sort((a, b) => a[0] - b[0]).map(([, text]) => JSON.parse(text.trim()) as Report);
  return { reports, codes: exits.map((e) => e.code) };
}

t.test('nccl backend, no GPU', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dtrain-nccl-rt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = standInNccl(dir, true);

  t.test('the unique id travels through the store; every rank fails at its first CUDA call, naming it', async (t) => {
    const { reports, codes } = await job([2, 1], { DTRAIN_NCCL_PATH: good });
    t.same(codes, [0, 0, 0], 'every worker exits by itself (no thread or handle keeps it alive)');
    t.equal(reports.length, 3);
    for (const r of reports) {
      t.equal(r.ok, false);
      t.equal(r.name, 'InitError');
      // Reaching the world communicator's init means ranks 1 and 2 got rank 0's id from the store.
      const local = r.rank < 2 ? r.rank : 0;
      t.match(
        r.message,
        new RegExp(
          `^NCCL init of group 'world' \\(rank ${r.rank} of 3, device ${local}\\) failed \\(CUDA error\\): ` +
            `cudaSetDevice`,
        ),
      );
      t.match(r.message, /driver|device/i);
    }
  });

  t.test('NCCL that cannot be loaded: one line with the loader reason, on every rank', async (t) => {
    const { reports } = await job([2], { DTRAIN_NCCL_PATH: join(dir, 'missing.so') });
    for (const r of reports) t.match(r.message, /^DTRAIN_BACKEND=nccl: NCCL is not usable: .*missing\.so/);
  });

  t.test('rank 0 cannot make the id: it says why, the others time out naming rank 0', async (t) => {
    const { reports, codes } = await job([2], {
      DTRAIN_NCCL_PATH: standInNccl(dir, false),
      DTRAIN_RENDEZVOUS_TIMEOUT: '1s',
    });
    t.same(codes, [0, 0]);
    t.match(reports[0].message, /^NCCL unique id for group 'world': ncclGetUniqueId: stand-in NCCL/);
    t.match(reports[1].message, /^NCCL unique id for group 'world' from its rank 0 \(global rank 0\): .*nccl\/world\//);
  });

  t.test('world size 1 needs no store', async (t) => {
    const { reports } = await job([1], { DTRAIN_NCCL_PATH: good, DTRAIN_STORE: '' });
    t.match(reports[0].message, /^NCCL init of group 'world' \(rank 0 of 1, device 0\) failed \(CUDA error\)/);
  });
});
