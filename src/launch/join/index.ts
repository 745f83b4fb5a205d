/** Join mode (join-contract.ts): the controller waits for agents that come to it; the agents join. */
export { joinNodeSource, hostsListed, DEFAULT_JOIN_PORT, type JoinSourceOptions } from './node-source.js';
export { runJoinAgent, type JoinAgentRequest } from './join-agent.js';
export { readSecretFile, parseJoinAddress } from './secret-file.js';
