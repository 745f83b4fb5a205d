/**
 * The job key over a channel that is not encrypted: srun's stdin crosses the cluster network in clear
 * (Slurm signs its messages with munge but does not encrypt step I/O). The controller's hello carries an
 * ephemeral X25519 public key, the agent answers with its own, and the spec carries the job key sealed
 * with AES-256-GCM under a key both derive (HKDF-SHA256 over the shared secret, salted with both public
 * keys). Someone reading the network learns nothing usable; an active man in the middle on the cluster
 * network is out of scope (that needs keys known in advance: join mode's secret file). SSH channels are
 * encrypted already and send the key as it is.
 */
import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { StartError } from '../util/errors.js';

/** A sealed job key on the wire (agent-contract.ts `job_key_sealed`), base64 fields. */
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
    this.publicKey = pair.publicKey.export({ format: 'der', type: 'spki' }).subarray(x25519Spki.length).toString('base64');
  }

  /** The controller's side: seal `secret` for the agent whose hello carried `agentPublicKey`. */
  seal(secret: Buffer, agentPublicKey: string): SealedKey {
    const key = this.derive(agentPublicKey, this.publicKey, agentPublicKey);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    const data = Buffer.concat([cipher.update(secret), cipher.final()]);
    return { iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
  }

  /** The agent's side: open what the controller (hello key `controllerPublicKey`) sealed for this agent. */
  open(sealed: SealedKey, controllerPublicKey: string): Buffer {
    const key = this.derive(controllerPublicKey, controllerPublicKey, this.publicKey);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.iv, 'base64'));
      decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]);
    } catch {
      throw new StartError('dtrain agent: the sealed job key does not open with this key exchange (altered on the way?)');
    }
  }

  private derive(peer: string, controllerPublicKey: string, agentPublicKey: string): Buffer {
    const raw = Buffer.from(peer, 'base64');
    if (raw.length !== 32) throw new StartError(`key exchange: the peer's public key has ${raw.length} bytes, not 32`);
    const publicKey = createPublicKey({ key: Buffer.concat([x25519Spki, raw]), format: 'der', type: 'spki' });
    const shared = diffieHellman({ privateKey: this.privateKey, publicKey });
    const salt = Buffer.concat([Buffer.from(controllerPublicKey, 'base64'), Buffer.from(agentPublicKey, 'base64')]);
    return Buffer.from(hkdfSync('sha256', shared, salt, info, 32));
  }
}
