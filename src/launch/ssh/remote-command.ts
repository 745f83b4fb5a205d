/**
 * The command every SSH channel runs. It is one constant string, the same for every job and host, with no
 * config value and no secret in it: the login shell (bash, zsh, tcsh, fish, ...) only sees
 * `exec /bin/sh -c '<script>'`, so the script avoids everything those shells treat specially inside single
 * quotes (`'`, `!`, `\`, newlines). The values the script needs (prelude, workdir, dtrain path) arrive as
 * the first line of the channel's stdin, encoded as POSIX single-quoted assignments the script evals; the
 * rest of stdin belongs to the agent (its first message carries the plan, env and job secret).
 *
 * `read` consumes stdin one byte at a time on a pipe (POSIX requires it not to read past the newline), so
 * the agent's part of the stream is intact. The prelude runs with stdin from /dev/null (it must not eat the
 * agent's input) and stdout sent to stderr (module systems print there; stdout is the agent's channel).
 *
 * The agent is `node <dtrain> agent --stdio`. `<dtrain>` is ssh.remote_dtrain (`D`) when set; else the
 * controller's own bin/dtrain (`L`) where that path exists on the host (a shared or identical install),
 * else `dtrain` on the host's PATH.
 */

import { fileURLToPath } from 'node:url';

/** Exit codes of the script itself, chosen above what a shell or node use, so the spawner can name the cause. */
export const RemoteExit = {
  noHeader: 90,
  preludeFailed: 91,
  workdirMissing: 92,
  nodeMissing: 93,
  dtrainMissing: 94,
} as const;

/** What the script prints on stderr when the prelude itself exits the shell. */
export const preludeExitMarker = 'dtrain-remote: ssh.prelude exited the remote shell';

const script = [
  'nl=$(echo; echo x); nl=${nl%x}',
  `IFS= read -r h || exit ${RemoteExit.noHeader}`,
  'eval "$h"',
  // An `exit` inside the prelude ends this shell: the EXIT trap says so (the spawner shows that line).
  `trap "echo ${preludeExitMarker} >&2" EXIT`,
  'if [ -n "$P" ]; then { eval "$P"; } </dev/null >&2 || ' +
    `{ echo "dtrain-remote: prelude failed (exit $?)" >&2; trap - EXIT; exit ${RemoteExit.preludeFailed}; }; fi`,
  'trap - EXIT',
  `cd "$W" 2>/dev/null || { echo "dtrain-remote: workdir $W does not exist" >&2; exit ${RemoteExit.workdirMissing}; }`,
  'N=$(command -v node) || ' +
    `{ echo "dtrain-remote: node not found on PATH ($PATH)" >&2; exit ${RemoteExit.nodeMissing}; }`,
  'if [ -n "$D" ]; then S=$D; elif [ -f "$L" ]; then S=$L; else S=dtrain; fi',
  'X=; case "$S" in */*) [ -f "$S" ] && X=$S ;; *) X=$(command -v "$S") ;; esac',
  'E="dtrain not found: neither $L nor dtrain on PATH ($PATH)"; [ -z "$D" ] || E="dtrain not found at $D"',
  `[ -n "$X" ] || { echo "dtrain-remote: $E" >&2; exit ${RemoteExit.dtrainMissing}; }`,
  'exec "$N" "$X" agent --stdio',
].join('; ');

/** The exact command string sent in the SSH exec request. */
export const remoteCommand = `exec /bin/sh -c '${script}'`;

export interface RemoteLaunch {
  /** shell snippet run before the agent (ssh.prelude); empty for none */
  prelude: string;
  workdir: string;
  /** ssh.remote_dtrain: path of bin/dtrain on the host, or a name looked up on its PATH; empty for the default */
  dtrain: string;
  /** the controller's own bin/dtrain, tried on the host when `dtrain` is empty (default: this install's) */
  local?: string;
}

/** This install's bin/dtrain (import.meta.url is dist/launch/ssh/, in the bundles too). */
export const ownDtrain = fileURLToPath(new URL('../../../bin/dtrain', import.meta.url));

/** POSIX single quotes, with newlines spelled `$nl` so the header stays one line. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`).replace(/\n/g, `'"$nl"'`)}'`;
}

/** The first stdin line the script reads. */
export function encodeHeader(launch: RemoteLaunch): string {
  const values = { P: launch.prelude, W: launch.workdir, D: launch.dtrain, L: launch.local ?? ownDtrain };
  return `${Object.entries(values)
    .map(([name, value]) => `${name}=${shellQuote(value)}`)
    .join('; ')}\n`;
}

for (const forbidden of ["'", '!', '\\', '\n']) {
  if (script.includes(forbidden)) throw new Error(`remote script must not contain ${JSON.stringify(forbidden)}`);
}
