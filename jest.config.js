/** Tests run against compiled-on-the-fly TypeScript; network tests need root and make their own namespaces. */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/pkg', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  testTimeout: 60000,
  // Tests run bin/castnet and bin/castnet-cni as real processes: refuse a build older than the sources.
  globalSetup: '<rootDir>/test/build-is-current.cjs',
  // Network tests share one kernel; two workers keep a 2-core machine responsive.
  maxWorkers: 2,
  transform: { '^.+\\.ts$': 'ts-jest' },
  // client-node is ESM-only: see the shim.
  moduleNameMapper: { '^@kubernetes/client-node$': '<rootDir>/test/jest-client-node.cjs' },
};
