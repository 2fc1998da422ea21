// Lint for the TypeScript sources: ESLint's and typescript-eslint's recommended sets (syntax-level,
// no type information, so `npm run lint` stays a few seconds on 2 cores).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', '.jupyter/**', 'src/backend/wasm/**/*.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Plain CommonJS that runs before anything is compiled (scripts/ensure-built.js).
    files: ['scripts/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', __dirname: 'readonly', process: 'readonly', console: 'readonly', Buffer: 'readonly', WebAssembly: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['**/*.ts'],
    rules: {
      // Unused names prefixed with _ are deliberate (destructuring to drop a field, callbacks' parameters).
      // Project modules are imported statically; require() stays for optional or lazily loaded
      // packages (tfjs-node, the wasm backend, playwright, vega) and node built-ins.
      '@typescript-eslint/no-require-imports': ['error', { allow: ['^[^.]'] }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
);
