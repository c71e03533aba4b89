// `make upstream` delivers the pinned upstream versions, and a fresh clone on a machine that built
// them once gets them from the machine-wide store without rebuilding.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../pkg/sys/exec';
import { upstreamBin, upstreamTool } from '../harness/upstream';

const pinsDir = path.resolve(__dirname, '../../scripts/upstream');

/** The version the module's go.mod pins for `modulePath`, e.g. v1.37.2. */
async function pinned(moduleDir: string, modulePath: string): Promise<string> {
  const gomod = await readFile(path.join(pinsDir, moduleDir, 'go.mod'), 'utf8');
  const m = new RegExp(`^require ${modulePath.replace(/\./g, '\\.')} (v\\S+)`, 'm').exec(gomod);
  if (!m) throw new Error(`${moduleDir}/go.mod pins no ${modulePath}`);
  return m[1];
}

test('the built binaries report the versions pinned in scripts/upstream', async () => {
  const k8s = await pinned('k8s', 'k8s.io/kubernetes');
  const kubectl = JSON.parse(
    (await run(await upstreamTool('kubectl'), ['version', '--client', '-o', 'json'])).stdout,
  );
  expect(kubectl.clientVersion.gitVersion).toBe(k8s);
  expect((await run(await upstreamTool('kube-apiserver'), ['--version'])).stdout.trim()).toBe(
    `Kubernetes ${k8s}`,
  );

  const etcd = await pinned('etcd', 'go.etcd.io/etcd/server/v3');
  expect((await run(await upstreamTool('etcd'), ['--version'])).stdout).toContain(
    `etcd Version: ${etcd.slice(1)}`,
  );

  const helm = await pinned('helm', 'helm.sh/helm/v3');
  expect((await run(await upstreamTool('helm'), ['version', '--short'])).stdout.trim()).toBe(helm);

  await upstreamTool('cnitool');
});

test('a fresh cache is filled from the machine-wide store, and a second run is a no-op', async () => {
  const cache = await mkdtemp(path.join(os.tmpdir(), 'cnupstream-'));
  try {
    const build = () =>
      run('env', [`CASTNET_CACHE=${cache}`, path.join(pinsDir, 'build.sh')], { timeoutMs: 120_000 });
    const first = await build();
    // Nothing was compiled: the same pins were built when `make upstream` ran.
    expect(first.stderr).not.toMatch(/go build/);
    for (const name of ['kube-apiserver', 'kubectl', 'etcd', 'helm', 'cnitool']) {
      const [copy, original] = await Promise.all([
        readFile(path.join(cache, 'bin', name)),
        readFile(path.join(upstreamBin, name)),
      ]);
      expect(copy.equals(original)).toBe(true);
    }
    const second = await build();
    expect(second.stderr).toBe('');
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
});
