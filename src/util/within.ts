/** Waits for `p`, at most `ms`; the timer never keeps the process alive on its own. */
export function within(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise((r) => (timer = setTimeout(r, ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
