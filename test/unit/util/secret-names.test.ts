import t from 'tap';
import { isSecretName, maskSecrets, maskUrlUserInfo } from '../../../src/util/secret-names.js';

t.test('a name is secret when one of its _-separated tokens is', async (t) => {
  for (const name of [
    'HF_TOKEN',
    'DB_PASSWD',
    'DB_PASS',
    'PG_PASSWORD',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
    'WANDB_API_KEY',
    'OPENAI_APIKEY',
    'GITHUB_PAT',
    'GOOGLE_APPLICATION_CREDENTIALS',
    'ssh_passphrase',
    'KEY',
  ])
    t.ok(isSecretName(name), name);
  for (const name of ['PASSTHROUGH', 'KEYBOARD_LAYOUT', 'TOKENIZERS_PARALLELISM', 'MONKEY', 'WANDB_MODE', 'PWD'])
    t.notOk(isSecretName(name), name);
});

t.test('a token that ends in a secret word is secret too, and camelCase names split like _', async (t) => {
  for (const name of [
    'PGPASSWORD',
    'HFTOKEN',
    'apiToken',
    'MY_PRIVATEKEY',
    'dbPassword',
    'clientSecret',
    'X_SECRETKEY',
  ])
    t.ok(isSecretName(name), name);
  for (const name of ['HOTKEY', 'TOKENIZER', 'SECRETARY_NAME', 'PASSWORDLESS', 'tokenizerName'])
    t.notOk(isSecretName(name), name);
});

t.test('secret_env names more', async (t) => {
  t.notOk(isSecretName('SESAME'));
  t.ok(isSecretName('SESAME', ['SESAME']));
  t.same(maskSecrets({ SESAME: 'open', A: 'b' }, ['SESAME']), { SESAME: '***', A: 'b' });
});

t.test("a URL's user-info is masked in any value", async (t) => {
  t.equal(maskUrlUserInfo('postgres://u:pw@host/db'), 'postgres://u:***@host/db');
  t.equal(maskUrlUserInfo('postgres://u:p@ss@host:5432/db'), 'postgres://u:***@host:5432/db');
  t.equal(maskUrlUserInfo('https://ghp_abc@github.com/x.git'), 'https://***@github.com/x.git');
  t.equal(maskUrlUserInfo('a=http://h/x?u=a@b c'), 'a=http://h/x?u=a@b c', "an '@' after the path is not user-info");
  t.equal(maskUrlUserInfo('redis://:pw@h redis://u2:q@h2'), 'redis://:***@h redis://u2:***@h2');
  t.same(maskSecrets({ DATABASE_URL: 'postgres://u:pw@host', HF_TOKEN: 'x' }), {
    DATABASE_URL: 'postgres://u:***@host',
    HF_TOKEN: '***',
  });
});
