// Where `make upstream` (scripts/upstream/build.sh) puts the upstream tools the tests run.
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot as repo } from './repo.js';

/** .cache/bin (or $CASTNET_CACHE/bin): the binaries named in scripts/upstream/<module>/commands. */
export const upstreamBin = path.join(process.env.CASTNET_CACHE ?? path.join(repo, '.cache'), 'bin');

/** The path of upstream tool `name`; rejects with the remedy when `make upstream` has not built it. */
export async function upstreamTool(name: string): Promise<string> {
  const file = path.join(upstreamBin, name);
  try {
    await access(file, constants.X_OK);
  } catch (err) {
    throw new Error(`upstream tool ${name} is missing at ${file}: run \`make upstream\``, { cause: err });
  }
  return file;
}
