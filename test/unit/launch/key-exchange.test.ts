/**
 * The job key over srun's unencrypted stdin: sealed by the controller for one agent's X25519 key, opened by
 * that agent only; a tampered or misdirected seal fails as a StartError; readSpec does the agent's side.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { KeyExchange, open, seal } from '../../../src/launch/job-key-seal.js';
import { readSpec } from '../../../src/launch/agent-process.js';
import { StartError } from '../../../src/util/errors.js';
import { openJoinSpec, sealJoinSpec } from '../../../src/launch/join/join-contract.js';
import { packageVersion } from '../../../src/util/version.js';

t.test('sealed for one agent, opened by it, by no one else', async (t) => {
  const controller = new KeyExchange();
  const agent = new KeyExchange();
  const secret = randomBytes(32);
  const sealed = seal(controller.keyForAgent(agent.publicKey), secret);
  t.same(open(agent.keyForController(controller.publicKey), sealed), secret);
  t.notOk(sealed.data.includes(secret.toString('base64')), 'the secret is not in the sealed text');
  t.not(seal(controller.keyForAgent(agent.publicKey), secret).data, sealed.data, 'a fresh IV every time');
  t.throws(
    () => open(new KeyExchange().keyForController(controller.publicKey), sealed),
    StartError,
    'another agent cannot open it',
  );
  const altered = {
    ...sealed,
    data: Buffer.from(Buffer.from(sealed.data, 'base64').map((b, i) => (i === 0 ? b ^ 1 : b))).toString('base64'),
  };
  t.throws(() => open(agent.keyForController(controller.publicKey), altered), /altered on the way/);
  const shortTag = { ...sealed, tag: Buffer.from(sealed.tag, 'base64').subarray(0, 4).toString('base64') };
  t.throws(
    () => open(agent.keyForController(controller.publicKey), shortTag),
    /altered on the way/,
    'a truncated tag is refused',
  );
  t.throws(() => controller.keyForAgent(Buffer.alloc(31).toString('base64')), /31 bytes, not 32/);
  // the all-zero point gives an all-zero shared secret, which OpenSSL refuses: a StartError, not a crash
  t.throws(() => controller.keyForAgent(Buffer.alloc(32).toString('base64')), /public key is not usable/);
});

function agentStdio() {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const answers: Record<string, unknown>[] = [];
  stdout.on('data', (d: Buffer) =>
    answers.push(
      ...d
        .toString()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
    ),
  );
  return { stdin, stdout, answers };
}

t.test('readSpec: the hello with kx is answered with the agent key, and the sealed spec opens', async (t) => {
  const { stdin, stdout, answers } = agentStdio();
  const controller = new KeyExchange();
  const reading = readSpec(stdin, stdout);
  stdin.write(JSON.stringify({ type: 'hello', version: packageVersion(), kx: controller.publicKey }) + '\n');
  for (let i = 0; i < 50 && answers.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  const agentKey = answers[0].kx as string;
  t.match(agentKey, /^[A-Za-z0-9+/]{43}=$/);
  const secret = randomBytes(32).toString('base64');
  const plain = { type: 'spec', run_id: 'r', job_key: secret, ranks: [{ env: { HF_TOKEN: 'sesame' } }] };
  const sealed = seal(controller.keyForAgent(agentKey), Buffer.from(JSON.stringify(plain)));
  t.notMatch(JSON.stringify(sealed), /sesame/);
  stdin.write(JSON.stringify({ type: 'sealed_spec', sealed }) + '\n');
  const { spec } = await reading;
  t.same(spec, plain);
  stdin.end();
});

t.test('readSpec: a plain hello gets no kx, and a sealed spec without an exchange is refused', async (t) => {
  const { stdin, stdout, answers } = agentStdio();
  const reading = readSpec(stdin, stdout);
  stdin.write(JSON.stringify({ type: 'hello', version: packageVersion() }) + '\n');
  stdin.write(JSON.stringify({ type: 'sealed_spec', sealed: { iv: '', tag: '', data: '' } }) + '\n');
  await t.rejects(reading, /the spec is sealed but the hello had no key exchange/);
  t.notOk('kx' in answers[0]);
  stdin.end();
});

t.test(
  'readSpec: a controller of another version gets the hello answered, and the agent stops before any spec',
  async (t) => {
    const { stdin, stdout, answers } = agentStdio();
    const reading = readSpec(stdin, stdout);
    stdin.write(JSON.stringify({ type: 'hello', version: '0.0.0-other' }) + '\n');
    stdin.write(JSON.stringify({ type: 'spec', run_id: 'r', job_key: 'k' }) + '\n');
    await t.rejects(
      reading,
      new RegExp(
        `the controller runs 0\\.0\\.0-other, this agent ${packageVersion().replace(/\./g, '\\.')}: not starting`,
      ),
    );
    t.equal(answers[0].version, packageVersion(), 'the controller still learns our version');
    stdin.end();
  },
);

t.test("join: the spec in the store is sealed under the secret file's key, bound to its agent's index", async (t) => {
  const jobKey = randomBytes(32);
  const spec = { type: 'spec', run_id: 'r', job_key: '', ranks: [{ env: { HF_TOKEN: 'sesame' } }] } as never;
  const sent = sealJoinSpec(jobKey, 1, spec);
  t.notMatch(JSON.stringify(sent), /sesame/, 'nothing of the spec is in clear');
  t.same(openJoinSpec(jobKey, 1, sent), spec);
  t.throws(() => openJoinSpec(jobKey, 0, sent), /altered on the way/, "another agent's slot does not open it");
  t.throws(() => openJoinSpec(randomBytes(32), 1, sent), /altered on the way/, 'another secret does not open it');
});
