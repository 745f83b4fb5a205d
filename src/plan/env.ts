/** Secret masking for anything printed (the worker environment contract itself: runtime/worker-env-table.ts). */

// Which values are secret and how they are shown is one rule, in util/secret-names.ts.
export { isSecretName, maskSecrets } from '../util/secret-names.js';
