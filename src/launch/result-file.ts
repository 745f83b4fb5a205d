/**
 * The result file: the launch summary goes to DTRAIN_RESULT_FILE when it is set (a batch script from
 * `dtrain submit` sets it), which `dtrain submit --wait` reads to name the failed rank.
 */
import { renameSync, writeFileSync } from 'node:fs';

/** The launch summary, or `{exit_code, error}` when the launch stopped before it had one. */
export interface ResultDocument {
  exit_code: number;
  error?: string;
}

/** Written whole and renamed into place, so --wait (maybe on another machine over NFS) never reads half of it. */
export function writeResultFile(doc: ResultDocument, env: NodeJS.ProcessEnv = process.env): void {
  const file = env.DTRAIN_RESULT_FILE;
  if (!file) return;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(doc, null, 2) + '\n');
  renameSync(tmp, file);
}
