/** What a config may write as an environment variable name: `env` keys, `secret_env` items, env_file lines. */
export const ENV_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';

export const ENV_NAME_RULE = 'must be an environment variable name (letters, digits, _; not starting with a digit)';
