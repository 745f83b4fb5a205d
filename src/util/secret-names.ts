/**
 * Which environment values are secrets, and how they are shown: the one rule every printed env (plan table,
 * --json, --set echoes, error messages) follows.
 *
 * A name is secret when one of its tokens (split at `_` and at a lower-to-upper case change, compared in upper
 * case) is in SECRET_NAME_TOKENS or ends with one of SECRET_NAME_ENDINGS: HF_TOKEN, DB_PASSWD,
 * AWS_SECRET_ACCESS_KEY, WANDB_API_KEY, GITHUB_PAT, PGPASSWORD, HFTOKEN, apiToken, MY_PRIVATEKEY are;
 * PASSTHROUGH, KEYBOARD_LAYOUT, TOKENIZERS_PARALLELISM, MONKEY are not. The config's `secret_env` names more.
 * Whatever the name, a URL's user-info in a value is masked: `postgres://u:pw@host` shows as
 * `postgres://u:***@host`.
 */

/** Whole `_`-separated tokens that make a name secret (README.md "Secrets" lists them too). */
export const SECRET_NAME_TOKENS: readonly string[] = [
  'TOKEN',
  'TOKENS',
  'SECRET',
  'SECRETS',
  'PASS',
  'PASSWD',
  'PASSWORD',
  'PASSWORDS',
  'PASSPHRASE',
  'KEY',
  'KEYS',
  'APIKEY',
  'CREDENTIAL',
  'CREDENTIALS',
  'CREDS',
  'AUTH',
  'PAT',
  'COOKIE',
];

/** Endings that make a token secret on their own (PGPASSWORD, HFTOKEN); never a bare KEY (MONKEY, HOTKEY). */
export const SECRET_NAME_ENDINGS: readonly string[] = [
  'TOKEN',
  'PASSWORD',
  'PASSWD',
  'SECRET',
  'APIKEY',
  'PRIVATEKEY',
  'SECRETKEY',
  'ACCESSKEY',
];

const tokens = new Set(SECRET_NAME_TOKENS);

export const MASK = '***';

/** True when `name` is secret by the token rule or listed in `extra` (the config's secret_env). */
export function isSecretName(name: string, extra: Iterable<string> = []): boolean {
  for (const e of extra) if (e === name) return true;
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()
    .split('_')
    .some((t) => tokens.has(t) || SECRET_NAME_ENDINGS.some((end) => t.endsWith(end)));
}

// scheme://userinfo@ : the user-info runs to the last '@' before the path (a password may hold '@').
const URL_USERINFO = /\b([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^\s/?#]*)@/g;

/** `value` with the user-info of every URL in it masked: the password, or the whole of a user-only part. */
export function maskUrlUserInfo(value: string): string {
  return value.replace(URL_USERINFO, (_m, scheme: string, info: string) => {
    const colon = info.indexOf(':');
    return `${scheme}${colon >= 0 ? `${info.slice(0, colon)}:${MASK}` : MASK}@`;
  });
}

/** How one env value is shown: masked whole when its name is secret, else with URL user-info masked. */
export function shownEnvValue(name: string, value: string, extra: Iterable<string> = []): string {
  return isSecretName(name, extra) ? MASK : maskUrlUserInfo(value);
}

export function maskSecrets(env: Record<string, string>, extra: Iterable<string> = []): Record<string, string> {
  const names = new Set(extra);
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, shownEnvValue(k, v, names)]));
}
