/** Finds Debian's python3 with torch (only /usr/bin/python3 has it); tests skip, or fail under CI, without it. */
import { spawnSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';

export function torchAvailable(): boolean {
  const r = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8', timeout: 60_000 });
  return r.status === 0;
}

/**
 * tap `skip` value: false when torch is there; a reason otherwise (CI sets DTRAIN_REQUIRE_INTEGRATION and fails
 * instead).
 */
export function torchSkip(): false | string {
  if (torchAvailable()) return false;
  if (process.env.DTRAIN_REQUIRE_INTEGRATION)
    throw new Error(`${PYTHON} with torch is required (DTRAIN_REQUIRE_INTEGRATION is set)`);
  return `${PYTHON} has no torch`;
}
