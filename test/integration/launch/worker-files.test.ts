// Files a worker controls and the agent reads (its progress file, its error file): a FIFO or a device put
// there must not freeze or hold the launcher. The job still ends at once, naming the rank that failed.
import t, { type Test } from 'tap';
import { built, startDtrain, tempDir } from '../../helpers/launch.js';

const skip = !built() && 'run npx tsc -p . first';

/** Rank 0 runs `rank0` (sh) and fails with 9; rank 1 would run for a minute. */
async function launch(t: Test, rank0: string) {
  const dir = tempDir(t);
  const script = `if [ "$RANK" = 0 ]; then ${rank0}; exit 9; fi; sleep 60`;
  const run = startDtrain(
    [
      'launch',
      '--nproc-per-node',
      '2',
      '--set',
      'shutdown_grace=2s',
      '--set',
      `logs.dir=${dir}/logs`,
      '--',
      'sh',
      '-c',
      script,
    ],
    { cwd: dir },
  );
  const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
  const r = await run.done;
  clearTimeout(timer);
  return r;
}

for (const [what, rank0] of [
  ['a FIFO as its progress file', 'rm -f "$DTRAIN_PROGRESS_FILE"; mkfifo "$DTRAIN_PROGRESS_FILE"; sleep 2'],
  ['a FIFO as its error file', 'rm -f "$TORCHELASTIC_ERROR_FILE"; mkfifo "$TORCHELASTIC_ERROR_FILE"'],
  ['its error file a link to /dev/urandom', 'ln -sf /dev/urandom "$TORCHELASTIC_ERROR_FILE"'],
] as const) {
  t.test(`${what}: the job still ends at once, exit 1, naming rank 0`, { skip }, async (t) => {
    const r = await launch(t, rank0);
    t.equal(r.code, 1, `exit 1 in ${r.ms} ms: ${r.stderr.slice(-1500)}`);
    t.ok(r.ms < 15_000, `within the grace and a little (${r.ms} ms)`);
    t.match(r.stderr, /failed: rank 0 \(host [^)]*\) exited with code 9/);
  });
}
