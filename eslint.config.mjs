import js from '@eslint/js';
import boundaries from 'eslint-plugin-boundaries';
import tseslint from 'typescript-eslint';
import { layers } from './scripts/lint/layers.mjs';

// The layer order (scripts/lint/layers.mjs) as eslint-plugin-boundaries elements: each folder is an
// element named after its path, and may depend on itself and on the elements listed before it.
// Subfolders are listed first among the patterns, so a file belongs to its deepest listed folder.
const byDepth = [...layers].sort((a, b) => b.split('/').length - a.split('/').length);
const layering = {
  files: ['pkg/**/*.ts', 'cmd/**/*.ts'],
  ignores: ['**/*.test.ts'],
  plugins: { boundaries },
  settings: {
    'import/resolver': { typescript: { project: './tsconfig.json' } },
    'boundaries/include': ['pkg/**/*.ts', 'cmd/**/*.ts'],
    'boundaries/elements': byDepth.map((dir) => ({ type: dir, pattern: `${dir}/**`, partialMatch: false })),
  },
  rules: {
    'boundaries/no-unknown-files': 'error',
    'boundaries/dependencies': [
      'error',
      {
        default: 'disallow',
        message:
          '{{from.type}} must not import {{to.type}}: imports go down the layers (scripts/lint/layers.mjs)',
        policies: layers.map((dir, i) => ({
          from: { element: { type: dir } },
          allow: { to: { element: { types: { anyOf: layers.slice(0, i + 1) } } } },
        })),
      },
    ],
  },
};

export default tseslint.config(
  {
    ignores: [
      'jest.config.mjs',
      'dist/**',
      'node_modules/**',
      '.cache/**',
      'bin/**',
      'charts/**',
      'deploy/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { module: 'writable', require: 'readonly', __dirname: 'readonly', process: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  layering,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
);
