/**
 * A worker process for the proxy's fairness test, reaching the store through DTRAIN_STORE like a real
 * worker. FLOOD=N: sends N GETs of a key nobody sets at once, then a PING (answered after all of them
 * were handled; refused or not), and prints `refused <count> <first refusal's message>`. GET=key: prints `got <value>`,
 * or `failed <message>` and exits 1.
 */
import { StoreClient } from '../../src/store/client.js';
import { Status } from '../../src/store/frame.js';
import { StoreRequestError } from '../../src/store/errors.js';

const client = await StoreClient.connectUnix(process.env.DTRAIN_STORE!, { timeoutMs: 60000 });
if (process.env.FLOOD) {
  let refused = 0;
  let first = '';
  for (let i = 0; i < Number(process.env.FLOOD); i++) {
    client.get('never', 600000).catch((err: Error) => {
      if (err instanceof StoreRequestError && err.status === Status.overLimit) refused++;
      first ||= `${(err as StoreRequestError).status} ${err.message}`;
    });
  }
  await client.ping().catch(() => {}); // refused too when over the limit: either way, answered after the GETs
  process.stdout.write(`refused ${refused} ${first}\n`);
  setInterval(() => {}, 1000); // stays, its GETs blocked, until the test ends it
} else {
  try {
    process.stdout.write(`got ${(await client.get(process.env.GET!, 20000)).toString()}\n`);
    await client.close();
  } catch (err) {
    process.stdout.write(`failed ${(err as Error).message}\n`);
    process.exit(1);
  }
}
