/**
 * A stand-in worker process: reaches the store only through DTRAIN_STORE (the agent's Unix proxy),
 * as real workers do, records itself, waits at barrier "b" for 3, and exits 0 once through it.
 */
import { StoreClient } from '../../src/store/client.js';

const client = await StoreClient.connectUnix(process.env.DTRAIN_STORE!);
const { prefix } = await client.whoami();
await client.set(`worker/${process.pid}`, prefix);
process.stdout.write('waiting\n');
await client.barrier('b', 3, 60000);
process.stdout.write('passed\n');
await client.close();
