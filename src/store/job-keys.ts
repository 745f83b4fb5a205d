/**
 * Worker keys that name the job's own records, the same in every attempt (src/store/PROTOCOL.md, the
 * agent's proxy): passed upstream without the attempt prefix, to GET, CAS, WAIT and CHECK only. A module of
 * its own so that workers can name these keys without loading the proxy.
 */
export const jobKeyPrefix = 'job/';
