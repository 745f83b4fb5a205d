/**
 * Store errors. Waiting too long for the rendezvous is a start failure (exit 3, src/util/errors.ts),
 * so timeouts and lost connections are StartErrors; a request the store refused as malformed is a
 * bug in the caller and says which op it was.
 */
import { DtrainError, ExitCode, StartError } from '../util/errors.js';

/** The store answered "timeout", or did not answer in time. Says which key(s) and how long. */
export class StoreTimeoutError extends StartError {
  constructor(
    message: string,
    readonly op: string,
    readonly keys: string[],
    readonly timeoutMs: number,
  ) {
    super(message);
  }
}

/** The connection to the store is gone (or could not be made). */
export class StoreConnectionError extends StartError {}

/**
 * The store let this connection go before it authenticated: turned away to admit another ("busy"),
 * closed mid-handshake, or the handshake ran past its deadline. Not a wrong key: worth another try.
 */
export class StoreAdmissionError extends StoreConnectionError {}

/** The store refused a request (bad request, not authorized, unexpected status). */
export class StoreRequestError extends DtrainError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message, ExitCode.jobFailed);
  }
}
