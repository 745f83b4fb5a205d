/**
 * Mutual challenge-response authentication for the store's TCP leg and the per-frame envelope that
 * follows it. PROTOCOL.md ("Authentication on the TCP leg") describes the same bytes; encoders and the
 * matching checks sit side by side here.
 *
 * Neither side ever sends the job key K. Each proves knowledge of K with an HMAC over both nonces under
 * a label naming its role, so one side's proof can never be replayed as the other's, and the client
 * only sends its proof after the server has proved itself (a fake store learns nothing usable).
 * Fresh nonces per connection give fresh session keys, so a frame recorded on one connection is
 * worthless on another; per-direction keys stop reflection; sequence numbers stop replay and reordering
 * inside a connection.
 */
import { createHmac, randomFillSync, timingSafeEqual } from 'node:crypto';
import { encodeBodyInside } from './frame.js';

export const protocolVersion = 1;
const magic = Buffer.from('DTS', 'latin1');
export const nonceBytes = 32;
const macBytes = 32;
const seqBytes = 8;
/** Bytes of a sealed frame before its body: the frame length and the sequence number. */
const sealedBefore = 4 + seqBytes;
/** Bytes an envelope adds around a body: seq before, MAC after. */
export const envelopeOverhead = seqBytes + macBytes;
/** A job key shorter than this is refused: it would be guessable. */
export const minJobKeyBytes = 16;

export const HandshakeKind = { hello: 1, challenge: 2, proof: 3, reject: 4 } as const;

export const RejectReason = { version: 1, auth: 2, busy: 3 } as const;
export const rejectReasonText: Record<number, string> = {
  [RejectReason.version]: 'protocol version mismatch (dtrain versions differ)',
  [RejectReason.auth]: 'the store rejected our proof of the job key (wrong job key)',
  [RejectReason.busy]: 'the store has too many connections still authenticating (it turned this one away)',
};

// Each label with the zero byte that ends it, so no label can be a prefix-extension of another's input.
const label = (text: string) => Buffer.from(`${text}\0`, 'latin1');
const labels = {
  serverProof: label('dtrain-store v1 server proof'),
  clientProof: label('dtrain-store v1 client proof'),
  clientToServer: label('dtrain-store v1 key client to server'),
  serverToClient: label('dtrain-store v1 key server to client'),
};

export class AuthError extends Error {
  override name = 'AuthError';
}

/** The store turned the connection away to admit another (REJECT busy): worth another try later. */
export class BusyRejectError extends AuthError {
  override name = 'BusyRejectError';
}

/** The peer speaks another protocol version: answered with REJECT version rather than a bare close. */
export class VersionMismatchError extends AuthError {
  override name = 'VersionMismatchError';
}

// Nonces are drawn from the CSPRNG a pool at a time: one call per 256 nonces instead of one per
// connection (each call costs about 10 µs, which a store admitting thousands of agents at once feels).
const noncePool = Buffer.alloc(nonceBytes * 256);
let noncePoolAt = noncePool.length;

/** Writes a fresh random nonce, never handed out twice, at `at` of `out`. */
function freshNonceInto(out: Buffer, at: number): void {
  if (noncePoolAt === noncePool.length) {
    randomFillSync(noncePool);
    noncePoolAt = 0;
  }
  noncePool.copy(out, at, noncePoolAt, noncePoolAt + nonceBytes);
  noncePoolAt += nonceBytes;
}

/**
 * Pays the process's one-time cost of its first nonce and first MAC (OpenSSL's lazy set-up, milliseconds)
 * ahead of time, for a store about to admit agents.
 */
export function warmUpCrypto(): void {
  if (noncePoolAt === noncePool.length) {
    randomFillSync(noncePool);
    noncePoolAt = 0;
  }
  hmac(Buffer.alloc(macBytes), labels.serverProof, Buffer.alloc(2 * nonceBytes));
}

/** H(label) = HMAC-SHA256(K, label ‖ 0x00 ‖ T), T = nonce_c ‖ nonce_s (the zero byte is in `label`) */
function hmac(key: Buffer, label: Buffer, transcript: Buffer): Buffer {
  return createHmac('sha256', key).update(label).update(transcript).digest();
}

/** A handshake message of `size` bytes, its "DTS" kind header written. */
function message(kind: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  magic.copy(out, 0);
  out[3] = kind;
  return out;
}

/** Checks magic, kind and size; a client (fromServer) also turns a REJECT into its reason. */
function checkHeader(body: Buffer, kind: number, size: number, fromServer: boolean): void {
  if (body.length < 4 || !body.subarray(0, 3).equals(magic))
    throw new AuthError('not a dtrain store handshake message');
  if (fromServer && body[3] === HandshakeKind.reject) throw rejectError(body.length >= 5 ? body[4] : 0);
  if (body[3] !== kind) throw new AuthError(`expected handshake message ${kind}, got ${body[3]}`);
  if (body.length !== size) throw new AuthError(`handshake message ${kind} has ${body.length} bytes, expected ${size}`);
}

export function checkJobKey(jobKey: Buffer): void {
  if (!Buffer.isBuffer(jobKey) || jobKey.length < minJobKeyBytes) {
    throw new AuthError(`the job key must be at least ${minJobKeyBytes} bytes`);
  }
}

/** The client's side of the handshake: hello → (challenge) → proof, then a session. */
export class ClientHandshake {
  /** T = nonce_c ‖ nonce_s; nonce_s is known once the challenge came */
  private readonly transcript = Buffer.alloc(2 * nonceBytes);
  private challenged = false;

  constructor(private readonly jobKey: Buffer) {
    checkJobKey(jobKey);
    freshNonceInto(this.transcript, 0);
  }

  get nonceC(): Buffer {
    return this.transcript.subarray(0, nonceBytes);
  }

  /** HELLO = "DTS" kind:u8=1 version:u8 nonce_c[32] */
  hello(): Buffer {
    const out = message(HandshakeKind.hello, 5 + nonceBytes);
    out[4] = protocolVersion;
    this.transcript.copy(out, 5, 0, nonceBytes);
    return out;
  }

  /** CHALLENGE = "DTS" kind:u8=2 version:u8 nonce_s[32] server_proof[32]; returns the PROOF to send. */
  answerChallenge(body: Buffer): Buffer {
    if (body.length >= 5 && body[3] === HandshakeKind.challenge && body[4] !== protocolVersion) {
      throw new VersionMismatchError(
        `protocol version mismatch: the store speaks ${body[4]}, this dtrain ${protocolVersion}`,
      );
    }
    checkHeader(body, HandshakeKind.challenge, 5 + nonceBytes + macBytes, true);
    // The transcript with this nonce_s is only kept once the server's proof over it checked out.
    const transcript = Buffer.allocUnsafe(2 * nonceBytes);
    this.transcript.copy(transcript, 0, 0, nonceBytes);
    body.copy(transcript, nonceBytes, 5, 5 + nonceBytes);
    const serverProof = body.subarray(5 + nonceBytes);
    const expected = hmac(this.jobKey, labels.serverProof, transcript);
    if (!timingSafeEqual(serverProof, expected)) {
      throw new AuthError(
        'the store did not prove knowledge of the job key (wrong job key, or another job on this port)',
      );
    }
    transcript.copy(this.transcript);
    this.challenged = true;
    // PROOF = "DTS" kind:u8=3 client_proof[32]
    const proof = message(HandshakeKind.proof, 4 + macBytes);
    hmac(this.jobKey, labels.clientProof, this.transcript).copy(proof, 4);
    return proof;
  }

  session(): Session {
    if (!this.challenged) throw new AuthError('handshake not finished');
    return new Session(
      hmac(this.jobKey, labels.clientToServer, this.transcript),
      hmac(this.jobKey, labels.serverToClient, this.transcript),
    );
  }
}

/** The server's side: (hello) → challenge → (proof) → session. */
export class ServerHandshake {
  /** T = nonce_c ‖ nonce_s; nonce_c is known once the hello came */
  private readonly transcript = Buffer.allocUnsafe(2 * nonceBytes);
  private helloSeen = false;

  constructor(private readonly jobKey: Buffer) {
    checkJobKey(jobKey);
    freshNonceInto(this.transcript, nonceBytes);
  }

  /** Checks a HELLO and returns the CHALLENGE to send. A version mismatch throws with a reject attached. */
  answerHello(body: Buffer): Buffer {
    if (
      body.length >= 5 &&
      body.subarray(0, 3).equals(magic) &&
      body[3] === HandshakeKind.hello &&
      body[4] !== protocolVersion
    ) {
      throw new VersionMismatchError(`client speaks protocol ${body[4]}, this store ${protocolVersion}`);
    }
    checkHeader(body, HandshakeKind.hello, 5 + nonceBytes, false);
    body.copy(this.transcript, 0, 5);
    this.helloSeen = true;
    const challenge = message(HandshakeKind.challenge, 5 + nonceBytes + macBytes);
    challenge[4] = protocolVersion;
    this.transcript.copy(challenge, 5, nonceBytes);
    hmac(this.jobKey, labels.serverProof, this.transcript).copy(challenge, 5 + nonceBytes);
    return challenge;
  }

  /** Checks the client's PROOF and returns the session; throws AuthError when it is wrong. */
  acceptProof(body: Buffer): Session {
    if (!this.helloSeen) throw new AuthError('proof before hello');
    checkHeader(body, HandshakeKind.proof, 4 + macBytes, false);
    const expected = hmac(this.jobKey, labels.clientProof, this.transcript);
    if (!timingSafeEqual(body.subarray(4), expected)) throw new AuthError('wrong proof of the job key');
    return new Session(
      hmac(this.jobKey, labels.serverToClient, this.transcript),
      hmac(this.jobKey, labels.clientToServer, this.transcript),
    );
  }
}

/** REJECT = "DTS" kind:u8=4 reason:u8 version:u8, sent before closing so the client can say why. */
export function rejectMessage(reason: number): Buffer {
  const out = message(HandshakeKind.reject, 6);
  out[4] = reason;
  out[5] = protocolVersion;
  return out;
}

/**
 * The envelope every frame carries after the handshake:
 *   envelope = seq:u64be body mac[32],  mac = HMAC-SHA256(k_direction, seq ‖ body)
 * Sequence numbers start at 0 in each direction and go up by exactly one per frame.
 */
export class Session {
  private sendSeq = 0;
  private recvSeq = 0;

  constructor(
    private readonly sendKey: Buffer,
    private readonly recvKey: Buffer,
  ) {}

  /** Wraps a body in an envelope and frames it (len:u32be first), ready to write. */
  seal(body: Buffer): Buffer {
    const out = Buffer.allocUnsafe(sealedBefore + body.length + macBytes);
    body.copy(out, sealedBefore);
    return this.sealInPlace(out);
  }

  /** seal(encodeBody(code, id, args)) without the intermediate body. */
  sealMessage(code: number, id: number, args: readonly (Buffer | string)[]): Buffer {
    return this.sealInPlace(encodeBodyInside(code, id, args, sealedBefore, macBytes));
  }

  /** Fills in the length, sequence number and MAC around the body that `out` holds at sealedBefore. */
  private sealInPlace(out: Buffer): Buffer {
    const seq = this.sendSeq++;
    out.writeUInt32BE(out.length - 4, 0);
    writeSeq(out, 4, seq);
    const macAt = out.length - macBytes;
    createHmac('sha256', this.sendKey).update(out.subarray(4, macAt)).digest().copy(out, macAt);
    return out;
  }

  /** Checks an envelope's sequence number and MAC and returns the body; throws AuthError otherwise. */
  open(envelope: Buffer): Buffer {
    if (envelope.length < envelopeOverhead) throw new AuthError('envelope shorter than its sequence number and MAC');
    const signed = envelope.subarray(0, envelope.length - macBytes);
    const mac = envelope.subarray(envelope.length - macBytes);
    const expected = createHmac('sha256', this.recvKey).update(signed).digest();
    // MAC first: an unauthenticated sequence number says nothing.
    if (!timingSafeEqual(mac, expected)) throw new AuthError('frame MAC does not match (tampered or wrong session)');
    const seq = readSeq(envelope, 0);
    if (seq !== this.recvSeq)
      throw new AuthError(`sequence number ${seq}, expected ${this.recvSeq} (replayed or reordered frame)`);
    this.recvSeq++;
    return envelope.subarray(seqBytes, envelope.length - macBytes);
  }
}

function writeSeq(out: Buffer, at: number, seq: number): void {
  out.writeUInt32BE(Math.floor(seq / 2 ** 32), at);
  out.writeUInt32BE(seq >>> 0, at + 4);
}

function readSeq(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * 2 ** 32 + buf.readUInt32BE(at + 4);
}

/** The reason text when a body is a REJECT, else undefined. */
export function rejectText(body: Buffer): string | undefined {
  return rejectOf(body)?.message;
}

/** The error a REJECT body stands for, else undefined. */
export function rejectOf(body: Buffer): AuthError | undefined {
  if (body.length !== 6 || !body.subarray(0, 3).equals(magic) || body[3] !== HandshakeKind.reject) return undefined;
  return rejectError(body[4]);
}

function rejectError(reason: number): AuthError {
  const text = rejectReasonText[reason] ?? `rejected (reason ${reason})`;
  return reason === RejectReason.busy ? new BusyRejectError(text) : new AuthError(text);
}
