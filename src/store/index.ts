/** The rendezvous store: server (controller), client (agents, TS workers), proxy (agent → workers). */
export { StoreServer, type StoreServerOptions, type StoreServerStats } from './server.js';
export {
  StoreClient,
  StoreAuthError,
  retryAdmission,
  type StoreClientOptions,
  type TcpConnectOptions,
  type PendingRequest,
} from './client.js';
export { StoreProxy, attemptPrefix, type StoreProxyOptions } from './proxy.js';
export { jobKeyPrefix } from './job-keys.js';
export { StoreTimeoutError, StoreConnectionError, StoreAdmissionError, StoreRequestError } from './errors.js';
export { Op, Status } from './frame.js';
