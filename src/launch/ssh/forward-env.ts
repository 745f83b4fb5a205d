/**
 * `ssh.forward_env`: the controller's variables that follow the job to remote nodes (DeepSpeed exports the
 * same families). Patterns are names with `*` wildcards. The result sits below the config's `env` and the
 * plan's own variables: the controller merges it first and lets everything else override it.
 */
export function forwardedEnv(patterns: string[], env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const res = patterns.map((p) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`));
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && res.some((re) => re.test(name))) out[name] = value;
  }
  return out;
}

/** Lowest precedence first: forwarded, then the config's env (and the plan's per-rank variables after it). */
export function mergeBelow(forwarded: Record<string, string>, env: Record<string, string>): Record<string, string> {
  return { ...forwarded, ...env };
}
