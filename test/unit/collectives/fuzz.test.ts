/**
 * Builds the libFuzzer targets (the store frame parser) with clang under AddressSanitizer and runs each for
 * a bounded number of inputs: any crash, leak or sanitizer report fails the test. Skips when clang or its
 * fuzzer runtime is missing (CI installs clang).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/collectives-harness.js';

const clang = spawnSync('clang++', ['--version']);
const required = process.env.DTRAIN_REQUIRE_INTEGRATION === '1';

const targets = [
  {
    what: 'store frame parser',
    name: 'store_frame_fuzz',
    sources: [
      join(repoRoot, 'addon', 'fuzz', 'store_frame_fuzz.cc'),
      join(repoRoot, 'addon', 'src', 'store_client', 'frame.cc'),
    ],
    corpus: join(repoRoot, 'addon', 'fuzz', 'corpus'),
  },
];

for (const target of targets) {
  t.test(
    `${target.what} survives libFuzzer + ASan`,
    { skip: clang.status !== 0 && !required ? 'clang++ not installed' : false },
    async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'dtrain-fuzz-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      const bin = join(dir, target.name);
      const build = spawnSync(
        'clang++',
        [
          '-std=c++17',
          '-g',
          '-O1',
          '-fsanitize=fuzzer,address,undefined',
          '-fno-sanitize-recover=undefined',
          `-I${join(repoRoot, 'addon', 'src')}`,
          ...target.sources,
          '-o',
          bin,
        ],
        { encoding: 'utf8' },
      );
      t.equal(build.status, 0, `clang++ builds the fuzz target: ${build.stderr.slice(-2000)}`);
      if (build.status !== 0) return;
      const corpus = join(dir, 'corpus');
      spawnSync('cp', ['-r', target.corpus, corpus]);
      const run = spawnSync(bin, ['-runs=200000', '-max_len=4096', '-seed=1', corpus], {
        encoding: 'utf8',
        timeout: 240_000,
      });
      t.equal(run.status, 0, `no crash or sanitizer report: ${run.stderr.slice(-3000)}`);
      t.match(run.stderr, /Done \d+ runs/);
    },
  );
}
