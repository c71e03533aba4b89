// Jest globalSetup: refuse to test a stale build. Many tests run bin/castnet (node on dist/) and
// bin/castnet-cni as real processes, so a dist/ or bin/ older than the sources would test old code
// while the test files themselves are current. The Makefile is the one source of the build's
// dependency graph: `make -q` answers whether any of the built files needs remaking.
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const builtFiles = ['bin/castnet', 'bin/castnet-cni'];

module.exports = function buildIsCurrent() {
  const root = path.resolve(__dirname, '..');
  const question = spawnSync('make', ['-q', ...builtFiles], { cwd: root, encoding: 'utf8' });
  if (question.error) throw new Error(`cannot check the build with make: ${question.error.message}`);
  if (question.status === 0) return;
  const plan = spawnSync('make', ['-n', ...builtFiles], { cwd: root, encoding: 'utf8' });
  throw new Error(
    `dist/ or bin/ is older than the sources, so the tests would run old code: run \`make build\` first ` +
      `(\`make test\` does). make would run:\n${plan.stdout.trim()}`,
  );
};
