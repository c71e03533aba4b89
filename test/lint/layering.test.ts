// `make lint` keeps the layer order of scripts/lint/layers.mjs: ESLint with the repository's own
// config, on source text placed (virtually) in the folders named, as an editor would lint it.
import { ESLint } from 'eslint';
import { repoRoot } from '../harness/repo.js';

const eslint = new ESLint({ cwd: repoRoot });

async function layeringErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result.messages.filter((m) => m.ruleId?.startsWith('boundaries/')).map((m) => m.message);
}

describe('the layering lint rule', () => {
  it('refuses an import up the layers, naming both folders', async () => {
    await expect(
      layeringErrors(
        'pkg/netaddr/probe.ts',
        "import { Lab } from '../lab/runner.js';\nexport const x = Lab;\n",
      ),
    ).resolves.toEqual([
      expect.stringMatching(/^pkg\/netaddr must not import pkg\/lab: imports go down the layers/),
    ]);
  });

  it('treats a listed subfolder as its own layer, above its siblings and below its parent', async () => {
    const up = "import { NodeAgent } from '../node-agent.js';\nexport const x = NodeAgent;\n";
    await expect(layeringErrors('pkg/agent/dataplane/probe.ts', up)).resolves.toEqual([
      expect.stringMatching(/^pkg\/agent\/dataplane must not import pkg\/agent:/),
    ]);
    const down =
      "import { DataplaneCounters } from './dataplane/counters.js';\nexport type X = DataplaneCounters;\n";
    await expect(layeringErrors('pkg/agent/probe.ts', down)).resolves.toEqual([]);
  });

  it('allows imports down the layers and within a folder', async () => {
    const code =
      "import { errorMessage } from '../base/errors.js';\nimport { parseCidr } from '../netaddr/ip.js';\n" +
      'export const x = [errorMessage, parseCidr];\n';
    await expect(layeringErrors('pkg/controller/probe.ts', code)).resolves.toEqual([]);
  });

  it('refuses a source folder that has no place in the order', async () => {
    await expect(layeringErrors('pkg/newthing/probe.ts', 'export const x = 1;\n')).resolves.toEqual([
      expect.stringMatching(/does not belong to any known element/),
    ]);
  });
});
