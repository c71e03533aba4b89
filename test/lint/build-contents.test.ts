// What `make build` compiles into dist/ (and so into the image): castnet's own sources, never test
// code. A test helper imported from pkg/ would be pulled in through the import graph, so this
// follows the graph the way tsc does rather than reading tsconfig.build.json's patterns.
import path from 'node:path';
import ts from 'typescript';
import { repoRoot } from '../harness/repo.js';

function builtFiles(): string[] {
  const parsed = ts.getParsedCommandLineOfConfigFile(path.join(repoRoot, 'tsconfig.build.json'), undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  })!;
  const program = ts.createProgram(parsed.fileNames, parsed.options);
  return program
    .getSourceFiles()
    .map((f) => path.relative(repoRoot, f.fileName))
    .filter((f) => !f.startsWith('node_modules/') && !f.startsWith('..'));
}

it('compiles only pkg/ and cmd/ sources, and no tests, fixtures or test harness', () => {
  const files = builtFiles();
  expect(files.length).toBeGreaterThan(50);
  const testCode = files.filter(
    (f) => !/^(pkg|cmd)\//.test(f) || /\.(test|fixture)\.ts$/.test(f) || f.split('/').includes('testing'),
  );
  expect(testCode).toEqual([]);
});
