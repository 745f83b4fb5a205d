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
 * The agent is the native one (build/Release/dtrain-agent next to the dtrain that `D` names, symbolic
 * links followed) when the header asks for it and `dtrain-agent --check` says it runs there and is current
 * (built from the sources beside it, its dtrain-exec too), the Node agent otherwise: both keep
 * the same contract (agent-contract.ts), and the native one costs a few ms of CPU per host instead of ~60.
 * `node` must be on PATH either way: the workers and the GPU probe need it.
 */

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
  `if [ -n "$P" ]; then { eval "$P"; } </dev/null >&2 || { echo "dtrain-remote: prelude failed (exit $?)" ` +
    `>&2; trap - EXIT; exit ${RemoteExit.preludeFailed}; }; fi`,
  'trap - EXIT',
  `cd "$W" 2>/dev/null || { echo "dtrain-remote: workdir $W does not exist" >&2; exit ${RemoteExit.workdirMissing}; }`,
  `N=$(command -v node) || { echo "dtrain-remote: node not found on PATH ($PATH)" >&2; exit ` +
    `${RemoteExit.nodeMissing}; }`,
  `case "$D" in */*) [ -f "$D" ] || D= ;; *) D=$(command -v "$D") || D= ;; esac`,
  `[ -n "$D" ] || { echo "dtrain-remote: dtrain not found" >&2; exit ${RemoteExit.dtrainMissing}; }`,
  'if [ "$A" = native ]; then R=$(readlink -f "$D" 2>/dev/null) && R=${R%/bin/*}/build/Release/dtrain-agent ' +
    '&& [ -x "$R" ] && "$R" --check </dev/null >/dev/null 2>&1 && exec "$R" --stdio --node "$N"; fi',
  'exec "$N" "$D" agent --stdio',
].join('; ');

/** The exact command string sent in the SSH exec request. */
export const remoteCommand = `exec /bin/sh -c '${script}'`;

export interface RemoteLaunch {
  /** shell snippet run before the agent (ssh.prelude); empty for none */
  prelude: string;
  workdir: string;
  /** path of bin/dtrain on the host, or a name looked up on its PATH */
  dtrain: string;
  /** which agent to run: the native one where it is built (else Node's), or always Node's */
  agent: 'native' | 'node';
}

/** DTRAIN_SSH_AGENT=node runs the Node agent on every host (to compare, or to work around the native one). */
export function agentKind(env: NodeJS.ProcessEnv = process.env): RemoteLaunch['agent'] {
  return env.DTRAIN_SSH_AGENT === 'node' ? 'node' : 'native';
}

/** POSIX single quotes, with newlines spelled `$nl` so the header stays one line. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`).replace(/\n/g, `'"$nl"'`)}'`;
}

/** The first stdin line the script reads. */
export function encodeHeader(launch: RemoteLaunch): string {
  return (
    `P=${shellQuote(launch.prelude)}; W=${shellQuote(launch.workdir)}; D=${shellQuote(launch.dtrain)}; ` +
    `A=${launch.agent}\n`
  );
}

for (const forbidden of ["'", '!', '\\', '\n']) {
  if (script.includes(forbidden)) throw new Error(`remote script must not contain ${JSON.stringify(forbidden)}`);
}
