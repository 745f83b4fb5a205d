/** Secret masking for anything printed (the worker environment contract itself: runtime/worker-env-table.ts). */

/** Env names whose values are masked in anything printed: *TOKEN*, *SECRET*, *KEY*, *PASSWORD*. */
export function isSecretName(name: string): boolean {
  return /TOKEN|SECRET|KEY|PASSWORD/i.test(name);
}

export function maskSecrets(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, isSecretName(k) ? '***' : v]));
}
