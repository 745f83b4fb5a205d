/** The smallest plan a run's status document is built from: one node, two ranks of one data-parallel group. */
export function twoRankPlan() {
  return {
    world_size: 2,
    nodes: [{ node_rank: 0, host: 'h0', nproc: 2, local: true }],
    ranks: [0, 1].map((rank) => ({
      rank,
      node_rank: 0,
      host: 'h0',
      local_rank: rank,
      data: rank,
      pipeline: 0,
      tensor: 0,
      command: ['x'],
      env: {},
    })),
  };
}
