import t from 'tap';
import { createHmac, randomBytes } from 'node:crypto';
import {
  AuthError,
  ClientHandshake,
  RejectReason,
  ServerHandshake,
  Session,
  rejectMessage,
  rejectText,
} from '../../../src/store/auth.js';
import { Op, encodeBody } from '../../../src/store/frame.js';

const key = randomBytes(32);

function handshake(clientKey = key, serverKey = key) {
  const client = new ClientHandshake(clientKey);
  const server = new ServerHandshake(serverKey);
  const challenge = server.answerHello(client.hello());
  const proof = client.answerChallenge(challenge);
  const serverSession = server.acceptProof(proof);
  return { client: client.session(), server: serverSession };
}

t.test('both sides derive matching session keys; frames flow both ways', async (t) => {
  const { client, server } = handshake();
  for (let i = 0; i < 3; i++) {
    const req = Buffer.from(`request ${i}`);
    t.same(server.open(client.seal(req).subarray(4)), req);
    const res = Buffer.from(`response ${i}`);
    t.same(client.open(server.seal(res).subarray(4)), res);
  }
});

t.test('the key never appears in any handshake message', async (t) => {
  const client = new ClientHandshake(key);
  const server = new ServerHandshake(key);
  const hello = client.hello();
  const challenge = server.answerHello(hello);
  const proof = client.answerChallenge(challenge);
  for (const m of [hello, challenge, proof]) t.equal(m.indexOf(key), -1);
  t.ok(hello.length <= 256 && challenge.length <= 256 && proof.length <= 256, 'all fit the pre-auth limit');
});

t.test('a client with the wrong key refuses the server before sending any proof', async (t) => {
  const client = new ClientHandshake(randomBytes(32));
  const challenge = new ServerHandshake(key).answerHello(client.hello());
  t.throws(() => client.answerChallenge(challenge), /did not prove knowledge of the job key/);
});

t.test('a server rejects a proof made with another key', async (t) => {
  const server = new ServerHandshake(key);
  const honest = new ClientHandshake(key);
  const challenge = server.answerHello(honest.hello());
  const proof = honest.answerChallenge(challenge);
  proof[10] ^= 1;
  t.throws(() => server.acceptProof(proof), AuthError);
});

t.test("the server's proof cannot be replayed as a client proof (distinct labels)", async (t) => {
  const server = new ServerHandshake(key);
  const client = new ClientHandshake(key);
  const challenge = server.answerHello(client.hello());
  const serverProof = challenge.subarray(5 + 32);
  const forged = Buffer.concat([Buffer.from('DTS'), Buffer.of(3), serverProof]);
  t.throws(() => server.acceptProof(forged), /wrong proof/);
});

t.test('tampered, replayed, reordered and reflected envelopes are refused', async (t) => {
  const { client, server } = handshake();
  const f0 = client.seal(Buffer.from('zero')).subarray(4);
  const f1 = client.seal(Buffer.from('one')).subarray(4);
  const tampered = Buffer.from(f0);
  tampered[9] ^= 0x20;
  t.throws(() => server.open(tampered), /MAC/);
  t.throws(() => server.open(f1), /sequence number 1, expected 0/, 'reordered');
  t.same(server.open(f0).toString(), 'zero');
  t.throws(() => server.open(f0), /sequence number 0, expected 1/, 'replayed');
  const reflected = server.seal(Buffer.from('x')).subarray(4);
  t.throws(() => server.open(reflected), /MAC/, 'a server frame sent back to the server');
  const other = handshake();
  t.throws(
    () => other.server.open(client.seal(Buffer.from('two')).subarray(4)),
    /MAC/,
    'frame from another connection',
  );
});

t.test('short keys and version mismatches are refused with clear text', async (t) => {
  t.throws(() => new ClientHandshake(Buffer.alloc(8)), /at least 16 bytes/);
  const hello = new ClientHandshake(key).hello();
  hello[4] = 9;
  t.throws(() => new ServerHandshake(key).answerHello(hello), /protocol 9/);
  t.match(rejectText(rejectMessage(RejectReason.busy)), /too many connections/);
  t.equal(rejectText(Buffer.from('DTS')), undefined);
});

t.test('nonces are fresh across many handshakes (past several refills of their pool)', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const hello = new ClientHandshake(key).hello();
    const challenge = new ServerHandshake(key).answerHello(hello);
    seen.add(hello.subarray(5).toString('hex'));
    seen.add(challenge.subarray(5, 37).toString('hex'));
  }
  t.equal(seen.size, 2000, 'no nonce handed out twice');
  t.notOk(seen.has('00'.repeat(32)), 'none left unfilled');
});

t.test('handshake and envelope bytes are the ones PROTOCOL.md defines (an independent HMAC agrees)', async (t) => {
  const H = (k: Buffer, ...parts: (Buffer | string)[]) => {
    const mac = createHmac('sha256', k);
    for (const p of parts) mac.update(p);
    return mac.digest();
  };
  const client = new ClientHandshake(key);
  const server = new ServerHandshake(key);
  const hello = client.hello();
  t.same([...hello.subarray(0, 5)], [0x44, 0x54, 0x53, 1, 1], 'HELLO header and version');
  const challenge = server.answerHello(hello);
  t.equal(challenge.length, 69);
  const T = Buffer.concat([hello.subarray(5), challenge.subarray(5, 37)]);
  const label = (text: string) => `dtrain-store v1 ${text}\0`;
  t.same(challenge.subarray(37), H(key, label('server proof'), T), 'server_proof');
  const proof = client.answerChallenge(challenge);
  t.same(proof.subarray(4), H(key, label('client proof'), T), 'client_proof');
  const serverSession = server.acceptProof(proof);
  const c2s = H(key, label('key client to server'), T);
  const body = encodeBody(Op.set, 7, ['k', 'v']);
  const sealed = client.session().seal(body);
  const seq0 = Buffer.alloc(8);
  t.same(sealed, Buffer.concat([Buffer.of(0, 0, 0, 8 + body.length + 32), seq0, body, H(c2s, seq0, body)]));
  t.same(serverSession.open(sealed.subarray(4)), body);
  const s2c = H(key, label('key server to client'), T);
  const answer = serverSession.sealMessage(0, 7, [Buffer.from('value')]);
  const answerBody = encodeBody(0, 7, ['value']);
  t.same(
    answer.subarray(4),
    Buffer.concat([seq0, answerBody, H(s2c, seq0, answerBody)]),
    'sealMessage is seal(encodeBody)',
  );
});

t.test('sealMessage and seal number frames from one sequence', async (t) => {
  const [a, b] = [randomBytes(32), randomBytes(32)];
  const one = new Session(a, b);
  const other = new Session(a, b);
  const peer = new Session(b, a);
  for (let i = 0; i < 4; i++) {
    const args = ['key', Buffer.alloc(i * 100, i)];
    // One session alternates the two ways, the other the opposite: the same bytes, frame for frame.
    const x = i % 2 ? one.sealMessage(Op.add, i, args) : one.seal(encodeBody(Op.add, i, args));
    const y = i % 2 ? other.seal(encodeBody(Op.add, i, args)) : other.sealMessage(Op.add, i, args);
    t.same(x, y, `frame ${i}`);
    t.same(peer.open(x.subarray(4)), encodeBody(Op.add, i, args));
  }
});
