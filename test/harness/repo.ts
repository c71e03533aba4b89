// The repository's root, found from a file's own location, so harness code runs the same from test/
// under jest and compiled into .cache/ by a benchmark's tsconfig.
import { existsSync } from 'node:fs';
import path from 'node:path';

function findRepoRoot(from: string): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
  }
  throw new Error(`no package.json above ${from}`);
}

export const repoRoot = findRepoRoot(import.meta.dirname);
