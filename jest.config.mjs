/**
 * Tests run as native ES modules (`NODE_OPTIONS=--experimental-vm-modules`, set by the Makefile and
 * scripts/run-tests.sh), so ESM-only packages such as @kubernetes/client-node load as they do in
 * production. ts-jest only transpiles (tsconfig.json sets isolatedModules): `make lint` type-checks. Network tests need root and make
 * their own namespaces.
 */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/pkg', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testTimeout: 60000,
  // Tests run bin/castnet and bin/castnet-cni as real processes: refuse a build older than the sources.
  globalSetup: '<rootDir>/test/build-is-current.cjs',
  // Network tests share one kernel; two workers keep a 2-core machine responsive.
  maxWorkers: 2,
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
  // Sources import './x.js' (NodeNext); jest resolves the .ts beside it.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
};
