// ESLint: typescript-eslint's type-aware recommended rules on the TypeScript (src/, test/); the plain
// recommended rules on the build, bench and GPU scripts. Formatting is Prettier's (eslint-config-prettier
// turns off the rules that would disagree with it).
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'build-cuda/', 'coverage/', '.tap/', 'node_modules/', 'logs/'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { project: './tsconfig.lint.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      // A leading `_` marks a value left unused on purpose (a destructured field dropped, a callback parameter).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      // async methods that implement a Promise-returning interface stay async so a throw becomes a rejection.
      '@typescript-eslint/require-await': 'off',
      // Options objects and imported modules hand out plain functions here, never methods that need `this`.
      '@typescript-eslint/unbound-method': 'off',
      // A caught value is passed on as it is (callers see what the user's code threw).
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
    },
  },
  {
    // Folders are made by util/make-dirs.ts: Node's recursive mkdir never returns under /proc.
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector:
            ':matches(CallExpression[callee.name=/^mkdir(Sync)?$/], ' +
            'CallExpression[callee.property.name=/^mkdir(Sync)?$/]) ' +
            ":matches(Property[key.name='recursive'], Property[key.value='recursive'])",
          message: "use makeDirs or makeDirsSync (src/util/make-dirs.ts): Node's recursive mkdir can spin forever",
        },
      ],
    },
  },
  {
    // The runtime keeps a failure caught from user code (unknown) and rethrows it unchanged at the next call.
    files: ['src/runtime/**/*.ts'],
    rules: { '@typescript-eslint/only-throw-error': 'off' },
  },
  {
    // tap runs the subtests a test file starts without awaiting each, and tests read JSON that processes
    // printed: those two rules would flag the tests' normal shape, not defects.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // Tests match terminal colour codes, whose escape byte is a control character.
      'no-control-regex': 'off',
      // The JSON a worker process prints has no static type.
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        queueMicrotask: 'readonly',
        performance: 'readonly',
        structuredClone: 'readonly',
        TextDecoder: 'readonly',
        TextEncoder: 'readonly',
        AbortController: 'readonly',
        SharedArrayBuffer: 'readonly',
        Atomics: 'readonly',
      },
    },
  },
  prettier,
  {
    // `catch {}` is how a best-effort cleanup (killing what may already be gone) says it expects failure.
    rules: { 'no-empty': ['error', { allowEmptyCatch: true }] },
  },
  {
    // Prettier cannot break strings and comments; this keeps them inside its width too.
    rules: { 'max-len': ['error', { code: 120, ignoreUrls: true, ignoreRegExpLiterals: true }] },
  },
);
