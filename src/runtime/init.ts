// init(), process groups and dist.alloc (issue 5) are exported from here.
export {};
