// Workers' output through the store (a real StoreServer on loopback): the agent's writer stops at the
// window until the controller's reader consumes, and the reader relays every record in order.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { StoreClient, StoreServer } from '../../../src/store/index.js';
import type { OutputSink } from '../../../src/launch/line-targets.js';
import { RecordSink } from '../../../src/launch/line-targets.js';
import { recordWindow } from '../../../src/launch/join/join-contract.js';
import { StoreRecordReader, StoreRecordWriter } from '../../../src/launch/join/record-relay.js';

t.test('the writer waits at the window for the reader; every line arrives, in order', async (t) => {
  const jobKey = randomBytes(32);
  const server = await StoreServer.start({ jobKey });
  const agentSide = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  const controllerSide = await StoreClient.connectTcp({ host: '127.0.0.1', port: server.port, jobKey });
  t.teardown(async () => {
    await agentSide.close();
    await controllerSide.close();
    await server.close();
  });

  const writer = new StoreRecordWriter(agentSide, 3);
  const records = new RecordSink(writer);
  const total = recordWindow * 3;
  // one record per write, each awaited, so each is one store value
  const writing = (async () => {
    for (let i = 0; i < total; i++) {
      records.lines(0, 'stdout', Buffer.from(`line ${i}\n`));
      await new Promise<void>((resolve) =>
        writer.writableNeedDrain ? writer.once('drain', resolve) : setImmediate(resolve),
      );
    }
  })();
  await new Promise((r) => setTimeout(r, 300));
  t.equal(writer.written, recordWindow, 'stopped at the window with nobody reading');

  const got: string[] = [];
  const console: OutputSink = {
    lines: (_rank, _stream, block) => (got.push(...block.toString().split('\n').filter(Boolean)), true),
    onDrain: () => {},
  };
  const reader = new StoreRecordReader(controllerSide, 3, console);
  await writing;
  await new Promise<void>((resolve) => writer.end(resolve));
  await reader.drained(writer.written, 10_000);
  reader.stop();
  t.ok(writer.written >= recordWindow + 1 && writer.written <= total, `${writer.written} store values`);
  await new Promise((r) => setTimeout(r, 50));
  t.same(
    got,
    Array.from({ length: total }, (_, i) => `line ${i}`),
  );
  t.ok(server.stats().keys <= 2 * recordWindow + 1, `consumed values are deleted (${server.stats().keys} keys left)`);
});
