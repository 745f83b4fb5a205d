// The example trainer with its gradient reduction overlapped with the backward (the default) and without
// (--no-overlap), through the real CLI: data 2 × pipeline 2 (1F1B, interleaved 1F1B, ZeRO-2) ends with the same
// parameters bit for bit (a data group of 2 averages two values, the same in any bucketing), and the overlap
// shows in the printed grad_overlap line (from dist.stats()).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { built, root, runDtrain, tempDir } from '../../helpers/launch.js';

const quickstart = join(root, 'configs/quickstart.yaml');

function paramHashes(dir: string): string[] {
  return Array.from(
    { length: 4 },
    (_, r) => (JSON.parse(readFileSync(join(dir, `rank-${r}.json`), 'utf8')) as { paramsSha256: string }).paramsSha256,
  );
}

if (!built()) {
  t.fail('build first: npm run build');
} else {
  t.test('overlapped and plain gradient reduction train the same model', async (t) => {
    const dir = tempDir(t, 'e2e-overlap');
    for (const [name, set] of [
      ['1f1b', []],
      ['interleaved', ['--set', 'parallelism.schedule=interleaved-1f1b', '--set', 'parallelism.virtual_stages=2']],
      ['zero2', ['--set', 'parallelism.zero_stage=2']],
    ] as const) {
      const run = async (tag: string, extra: string[]) => {
        const out = await runDtrain(
          [
            'launch',
            quickstart,
            '--set',
            `logs.dir=${dir}/logs`,
            ...set,
            '--',
            '--steps',
            '20',
            '--log-every',
            '20',
            '--report-dir',
            `${dir}/${name}-${tag}`,
            ...extra,
          ],
          { cwd: root },
        );
        t.equal(out.code, 0, `${name} ${tag}: ${out.stderr.slice(-1500)}`);
        return out.stdout + out.stderr;
      };
      const overlapped = await run('overlap', []);
      const plain = await run('plain', ['--no-overlap']);
      t.same(paramHashes(`${dir}/${name}-overlap`), paramHashes(`${dir}/${name}-plain`), `${name}: same parameters`);
      t.match(overlapped, /grad_overlap buckets \d+ in_flight_ms \S+ overlapped_ms \S+ exposed_ms \S+/, name);
      t.notMatch(plain, /grad_overlap/, `${name}: --no-overlap reduces after the backward`);
    }
  });
}
