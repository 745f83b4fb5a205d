/** Waiting on a store key with no deadline (the controller decides when a job is over, not a timeout). */
import type { StoreClient } from '../store/index.js';

/** Waits for a key with blocking GETs, however long it takes (each GET is bounded by the client). */
export async function getForever(client: StoreClient, key: string, chunkMs = 30000): Promise<Buffer> {
  for (;;) {
    try {
      return await client.get(key, chunkMs);
    } catch (err) {
      if ((err as Error).name !== 'StoreTimeoutError') throw err;
    }
  }
}
