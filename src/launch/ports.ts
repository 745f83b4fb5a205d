/** Free ports for MASTER_PORT and the store, and a clear error when a fixed one is taken. */
import { createServer } from 'node:net';
import { StartError } from '../util/errors.js';

/** Binds `port` (0: any) on all interfaces, returns the port, releases it. */
export function probePort(port: number, host = '0.0.0.0'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      const bound = (server.address() as { port: number }).port;
      server.close(() => resolve(bound));
    });
  });
}

/** A port free right now, different from every port in `avoid`. */
export async function freePort(avoid: number[] = []): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await probePort(0);
    if (!avoid.includes(port)) return port;
  }
  throw new StartError('could not find a free TCP port');
}

/** Checks that a port fixed by the config can be bound; exit 3 with the config key when not. */
export async function checkFixedPort(port: number, key: string): Promise<void> {
  try {
    await probePort(port);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'is already in use'
        : code === 'EACCES'
          ? 'needs privileges'
          : `cannot be bound (${code})`;
    throw new StartError(`${key}: port ${port} ${why}; pick another or set ${key}: auto`);
  }
}
