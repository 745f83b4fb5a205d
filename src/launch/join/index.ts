/** Join mode (join-contract.ts): the controller waits for agents that come to it; the agents join. */
export { launchJoined, hostsListed, DEFAULT_JOIN_PORT, type JoinLaunchRequest } from './launch-joined.js';
export { runJoinAgent, type JoinAgentRequest } from './join-agent.js';
export { readSecretFile, parseJoinAddress } from './secret-file.js';
