/**
 * Whether SIGHUP was ignored when dtrain started (`nohup dtrain launch ...`). Node resets inherited
 * signal dispositions before any JavaScript runs (under nohup, SigIgn in /proc/self/status shows only
 * SIGPIPE and SIGXFSZ), so bin/dtrain's shell line reads SigIgn first and passes the answer in
 * DTRAIN_SIGHUP_IGNORED. `node bin/dtrain` skips that line and cannot know.
 */
let ignored: boolean | undefined;

/** Read once; the variable is removed so that agents and workers never inherit it. */
export function sighupIgnoredAtStart(env: NodeJS.ProcessEnv = process.env): boolean {
  if (ignored === undefined) {
    ignored = env.DTRAIN_SIGHUP_IGNORED === '1';
    delete env.DTRAIN_SIGHUP_IGNORED;
  }
  return ignored;
}
