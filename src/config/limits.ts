/**
 * The sizes a config may ask for, written once: the schema bounds its keys with them, the hostfile reader
 * its slots, and the README's "Limits" paragraph states them. Past these a plan is no longer a job anyone
 * runs, and the launcher would spend minutes and gigabytes building it (or overflow its stack) before
 * saying anything.
 */

/** Processes on one node (nproc_per_node, slots): beyond any machine's cores or GPUs. */
export const MAX_PROCS_PER_NODE = 4096;
/** Nodes in one job (listed, in a hostfile, scheduler.nodes, elastic bounds). */
export const MAX_NODES = 16384;
/** Ranks in one job. */
export const MAX_WORLD_SIZE = 262144;
