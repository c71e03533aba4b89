// The lab's lifecycle: a start() that fails part-way (here the CNI plugin fails every ADD, after
// the nodes, the lookup service, the captures and the agents are up) tears down what it built.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Lab } from '../../pkg/lab/runner.js';
import { parseLabFile } from '../../pkg/lab/scenario.js';
import { LAB_RUN_DIR } from '../../pkg/lab/topology.js';
import { run } from '../../pkg/sys/exec.js';

const root = join(import.meta.dirname, '../..');

/** Lines of `ps` (every process's command line) that mention `text`. */
async function processesNaming(text: string): Promise<string[]> {
  const { stdout } = await run('ps', ['-eo', 'pid=,args=']);
  return stdout.split('\n').filter((l) => l.includes(text) && !l.includes('ps -eo'));
}

it('removes the namespaces, processes and files of a start that failed part-way', async () => {
  const file = parseLabFile(`
nodes: 2
networks: [{ name: blue, id: 1, subnets: [10.60.0.0/16] }]
pods: [{ name: a, node: 0, network: blue }]
scenarios: [{ name: s, steps: [{ sleep: 0 }] }]
`);
  const lab = new Lab(file, { castnetBin: join(root, 'bin/castnet'), cniBin: '/bin/false' });
  try {
    await expect(lab.start()).rejects.toThrow(/castnet-cni ADD for pod .* failed/);
    const id = lab.topology.id;
    const { stdout } = await run('ip', ['netns', 'list']);
    expect(stdout.split('\n').filter((l) => l.startsWith(id))).toEqual([]);
    // The agents and the underlay capture ran in the lab's namespaces, named after its ID.
    expect(await processesNaming(id)).toEqual([]);
    expect(existsSync(join(LAB_RUN_DIR, id))).toBe(false);
  } finally {
    await lab.dispose();
  }
}, 120000);
