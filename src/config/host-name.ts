/**
 * What a config may write as a host (nodes[].host, hostfile lines): a name or address with no spaces or
 * control characters (they would reach terminals and logs raw), not starting with '-' (an option to any
 * program that is handed it).
 */
export const HOST_NAME_PATTERN = '^[^\\s\\x00-\\x1f\\x7f-][^\\s\\x00-\\x1f\\x7f]*$';

export const HOST_NAME_RULE = "must be a host name or address: no spaces or control characters, not starting with '-'";
