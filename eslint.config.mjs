// ESLint flat config for the daemon, its tests and the benchmarks (typescript-eslint). Run: npm run lint.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The browser names the console's page uses (listed here rather than adding the `globals` package for them).
const BROWSER = Object.fromEntries(
  ['window', 'document', 'fetch', 'performance', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'URL',
    'sessionStorage', 'console', 'Image', 'requestAnimationFrame', 'AbortController'].map((n) => [n, 'readonly']),
);

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.venv/', 'training/', 'models/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Unhandled promise rejections kill the daemon (main.ts exits on them): every promise is awaited or voided.
      // node:test's describe/it/test return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      // `_name` marks a parameter kept for the signature (interfaces, callbacks).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // The console's page script runs in the browser (served as is, no build step).
    files: ['src/console/static/**/*.js'],
    languageOptions: { globals: BROWSER, sourceType: 'module' },
  },
  {
    // Tests read MQTT payloads and edit model.json as free-form JSON.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
