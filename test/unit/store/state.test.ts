import t from 'tap';
import { Op, Status, type Message } from '../../../src/store/frame.js';
import { StoreState, type Requester } from '../../../src/store/state.js';

/** A connection stand-in that records what the state answers it. */
class Recorder implements Requester {
  replies: Message[] = [];
  reply(m: Message) {
    this.replies.push(m);
  }
  last() {
    const m = this.replies.at(-1)!;
    return { status: m.code, id: m.id, args: m.args.map((a) => a.toString()) };
  }
}

let nextId = 1;
function req(state: StoreState, who: Recorder, op: number, ...args: string[]) {
  const id = nextId++;
  state.handle(who, { code: op, id, args: args.map((a) => Buffer.from(a)) });
  return id;
}

t.test('set/get/check/delete', async (t) => {
  const s = new StoreState();
  const r = new Recorder();
  req(s, r, Op.set, 'k', 'v');
  t.equal(r.last().status, Status.ok);
  req(s, r, Op.get, 'k', '0');
  t.same(r.last().args, ['v']);
  req(s, r, Op.get, 'missing', '0');
  t.equal(r.last().status, Status.notFound);
  req(s, r, Op.check, 'k', 'missing');
  t.same(r.last().args, ['1', '0']);
  req(s, r, Op.delete, 'k');
  t.same(r.last().args, ['1']);
  req(s, r, Op.delete, 'k');
  t.same(r.last().args, ['0']);
  t.equal(s.keyCount, 0);
});

t.test('add counts from zero, refuses non-numbers and overflow', async (t) => {
  const s = new StoreState();
  const r = new Recorder();
  req(s, r, Op.add, 'n', '5');
  req(s, r, Op.add, 'n', '-7');
  t.same(r.last().args, ['-2']);
  req(s, r, Op.set, 'text', 'abc');
  req(s, r, Op.add, 'text', '1');
  t.equal(r.last().status, Status.badRequest);
  req(s, r, Op.set, 'big', '9223372036854775807');
  req(s, r, Op.add, 'big', '1');
  t.equal(r.last().status, Status.badRequest);
  req(s, r, Op.add, 'n', '1.0');
  t.equal(r.last().status, Status.badRequest);
});

t.test('cas: empty expected means absent; answers the value after', async (t) => {
  const s = new StoreState();
  const r = new Recorder();
  req(s, r, Op.cas, 'k', '', 'first');
  t.same(r.last(), { status: Status.ok, id: nextId - 1, args: ['first'] });
  req(s, r, Op.cas, 'k', '', 'second');
  t.same(r.last().args, ['first'], 'not absent any more');
  req(s, r, Op.cas, 'k', 'first', 'third');
  t.same(r.last().args, ['third']);
  req(s, r, Op.cas, 'gone', 'x', 'y');
  t.equal(r.last().status, Status.notFound);
});

t.test('a blocked get is answered by a later set, from another requester', async (t) => {
  const s = new StoreState();
  const a = new Recorder();
  const b = new Recorder();
  const id = req(s, a, Op.get, 'k', '10000');
  t.equal(a.replies.length, 0);
  t.equal(s.blockedCount, 1);
  req(s, b, Op.add, 'k', '3');
  t.same(a.last(), { status: Status.ok, id, args: ['3'] });
  t.equal(s.blockedCount, 0);
});

t.test('wait needs every key; timeout answers status 1', async (t) => {
  const s = new StoreState();
  const r = new Recorder();
  const id = req(s, r, Op.wait, '10000', 'a', 'b');
  req(s, r, Op.set, 'a', '1');
  t.equal(r.replies.filter((m) => m.id === id).length, 0);
  req(s, r, Op.set, 'b', '1');
  t.equal(r.replies.find((m) => m.id === id)?.code, Status.ok);
  const late = req(s, r, Op.wait, '20', 'never');
  await new Promise((res) => setTimeout(res, 60));
  t.equal(r.replies.find((m) => m.id === late)?.code, Status.timeout);
  t.equal(s.blockedCount, 0);
});

t.test('barrier releases all at count, then the name is reusable; sizes must agree', async (t) => {
  const s = new StoreState();
  const rs = [new Recorder(), new Recorder(), new Recorder()];
  for (const r of rs.slice(0, 2)) req(s, r, Op.barrier, 'b', '3', '10000');
  t.equal(s.blockedCount, 2);
  const bad = new Recorder();
  req(s, bad, Op.barrier, 'b', '4', '10000');
  t.equal(bad.last().status, Status.badRequest, 'a different count is refused');
  req(s, rs[2], Op.barrier, 'b', '3', '10000');
  for (const r of rs) t.equal(r.last().status, Status.ok);
  req(s, bad, Op.barrier, 'b', '4', '0');
  t.equal(bad.last().status, Status.timeout, 'a new round may use another size');
});

t.test('released requesters stop counting at barriers and stop waiting', async (t) => {
  const s = new StoreState();
  const gone = new Recorder();
  const stays = new Recorder();
  req(s, gone, Op.barrier, 'b', '2', '10000');
  req(s, gone, Op.get, 'k', '10000');
  s.release(gone);
  t.equal(s.blockedCount, 0);
  req(s, stays, Op.barrier, 'b', '2', '0');
  t.equal(stays.last().status, Status.timeout, 'the departed arrival no longer counts');
  req(s, stays, Op.set, 'k', 'v');
  t.equal(gone.replies.length, 0, 'nothing is sent to a released requester');
});

t.test('cancel answers the blocked request with status 5', async (t) => {
  const s = new StoreState();
  const r = new Recorder();
  const id = req(s, r, Op.get, 'k', '10000');
  req(s, r, Op.cancel, String(id));
  t.same(
    r.replies.map((m) => [m.id, m.code]),
    [
      [id, Status.cancelled],
      [nextId - 1, Status.ok],
    ],
  );
  t.same(r.last().args, ['1']);
  req(s, r, Op.cancel, String(id));
  t.same(r.last().args, ['0']);
});

t.test('bad requests: arity, keys, numbers, unknown ops, duplicate pending ids, proxy-only ops', async (t) => {
  const s = new StoreState();
  const r = new Recorder();
  const cases: [number, string[]][] = [
    [Op.set, ['k']],
    [Op.set, ['', 'v']],
    [Op.set, ['k'.repeat(4097), 'v']],
    [Op.get, ['k', '-1']],
    [Op.get, ['k', '2147483648']],
    [Op.wait, ['10']],
    [Op.barrier, ['b', '0', '10']],
    [Op.check, []],
    [Op.ping, ['x']],
    [Op.delete, ['a', 'b']],
    [Op.cancel, ['x']],
    [99, []],
  ];
  for (const [op, args] of cases) {
    req(s, r, op, ...args);
    t.equal(r.last().status, Status.badRequest, `${op} ${JSON.stringify(args).slice(0, 40)}`);
  }
  req(s, r, Op.jobKey);
  t.equal(r.last().status, Status.notAuthorized);
  s.handle(r, { code: Op.get, id: 777, args: [Buffer.from('k'), Buffer.from('10000')] });
  s.handle(r, { code: Op.ping, id: 777, args: [] });
  t.same(r.last(), { status: Status.badRequest, id: 777, args: [] });
  s.releaseAll();
});

t.test('the stored-bytes limit refuses growth but allows shrinking', async (t) => {
  const s = new StoreState({ maxStoredBytes: 100 });
  const r = new Recorder();
  req(s, r, Op.set, 'k', 'x'.repeat(90));
  t.equal(r.last().status, Status.ok);
  req(s, r, Op.set, 'k2', 'x'.repeat(20));
  t.equal(r.last().status, Status.badRequest);
  req(s, r, Op.set, 'k', 'small');
  t.equal(r.last().status, Status.ok);
});
