// The C, C++ and CUDA sources under addon/ that git tracks (the fuzz corpora are data, not code).
import { execFileSync } from 'node:child_process';

export function cppSources(root) {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard', 'addon'], {
    cwd: root,
    encoding: 'utf8',
  });
  return listed.split('\0').filter((f) => /\.(c|cc|h|cu|cuh)$/.test(f) && !f.includes('/corpus'));
}
