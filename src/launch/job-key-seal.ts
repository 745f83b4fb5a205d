/**
 * Specs over channels that are not encrypted. srun's stdin crosses the cluster network in clear (Slurm
 * signs its messages with munge but does not encrypt step I/O): the controller's hello carries an
 * ephemeral X25519 public key, the agent answers with its own, and the whole spec (the job key, the
 * workers' env) travels sealed with AES-256-GCM under a key both derive (HKDF-SHA256 over the shared
 * secret, salted with both public keys). Someone reading the network learns nothing usable; an active man
 * in the middle on the cluster network is out of scope (that needs keys known in advance: join mode's
 * secret file). In join mode the store's frames are authenticated, not encrypted: the spec is sealed under
 * a key derived from that secret file's job key (keyFromJobKey), bound to the store key it is written at.
 * SSH channels are encrypted already and send the spec as it is.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { StartError } from '../util/errors.js';

/** Sealed bytes on the wire (agent-contract.ts `sealed_spec`), base64 fields. */
export interface SealedKey {
  iv: string;
  tag: string;
  data: string;
}

/** DER SubjectPublicKeyInfo of an X25519 key is this prefix and the 32 raw key bytes. */
const x25519Spki = Buffer.from('302a300506032b656e032100', 'hex');
const info = Buffer.from('dtrain job key v1');

export class KeyExchange {
  private readonly privateKey: KeyObject;
  /** raw 32-byte public key, base64: what the hello carries */
  readonly publicKey: string;

  constructor() {
    const pair = generateKeyPairSync('x25519');
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey
      .export({ format: 'der', type: 'spki' })
      .subarray(x25519Spki.length)
      .toString('base64');
  }

  /**
   * The controller's side: the key for the agent whose hello carried `agentPublicKey`. Derived as soon as the
   * hello arrives, so a bad key fails that node's start, not a later step.
   */
  keyForAgent(agentPublicKey: string): SealingKey {
    return { key: this.derive(agentPublicKey, this.publicKey, agentPublicKey) };
  }

  /** The agent's side: the key for what the controller (hello key `controllerPublicKey`) seals for it. */
  keyForController(controllerPublicKey: string): SealingKey {
    return { key: this.derive(controllerPublicKey, controllerPublicKey, this.publicKey) };
  }

  private derive(peer: string, controllerPublicKey: string, agentPublicKey: string): Buffer {
    const raw = Buffer.from(peer, 'base64');
    if (raw.length !== 32) throw new StartError(`key exchange: the peer's public key has ${raw.length} bytes, not 32`);
    let shared: Buffer;
    try {
      const publicKey = createPublicKey({ key: Buffer.concat([x25519Spki, raw]), format: 'der', type: 'spki' });
      shared = diffieHellman({ privateKey: this.privateKey, publicKey });
    } catch (err) {
      // e.g. a small-order point: OpenSSL refuses an all-zero shared secret
      throw new StartError(`key exchange: the peer's public key is not usable (${(err as Error).message})`);
    }
    const salt = Buffer.concat([Buffer.from(controllerPublicKey, 'base64'), Buffer.from(agentPublicKey, 'base64')]);
    return Buffer.from(hkdfSync('sha256', shared, salt, info, 32));
  }
}

/** A derived AES-256-GCM key (KeyExchange.keyForAgent / keyForController). */
export interface SealingKey {
  key: Buffer;
}

const joinInfo = Buffer.from('dtrain join spec v1');

/** The sealing key both ends of a join derive from the secret file's job key. */
export function keyFromJobKey(jobKey: Buffer): SealingKey {
  return { key: Buffer.from(hkdfSync('sha256', jobKey, Buffer.alloc(0), joinInfo, 32)) };
}

const ivBytes = 12;
const tagBytes = 16;

/** `aad`: what the sealed bytes are bound to (e.g. the store key they are written at), checked by open. */
export function seal(k: SealingKey, secret: Buffer, aad?: Buffer): SealedKey {
  const iv = randomBytes(ivBytes);
  const cipher = createCipheriv('aes-256-gcm', k.key, iv, { authTagLength: tagBytes });
  if (aad) cipher.setAAD(aad);
  const data = Buffer.concat([cipher.update(secret), cipher.final()]);
  return { iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
}

export function open(k: SealingKey, sealed: SealedKey, aad?: Buffer): Buffer {
  try {
    const iv = Buffer.from(sealed.iv, 'base64');
    const tag = Buffer.from(sealed.tag, 'base64');
    if (iv.length !== ivBytes || tag.length !== tagBytes) throw new Error('bad lengths');
    const decipher = createDecipheriv('aes-256-gcm', k.key, iv, { authTagLength: tagBytes });
    decipher.setAuthTag(tag);
    if (aad) decipher.setAAD(aad);
    return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]);
  } catch {
    throw new StartError('dtrain agent: the sealed spec does not open with this key (altered on the way?)');
  }
}
