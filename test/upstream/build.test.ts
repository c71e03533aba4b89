// `make upstream` delivers the pinned upstream versions, and a fresh clone on a machine that built
// them once gets them from the machine-wide store without rebuilding.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../pkg/sys/exec.js';
import { upstreamBin, upstreamTool } from '../harness/upstream.js';

const pinsDir = path.resolve(import.meta.dirname, '../../scripts/upstream');

/** The version the module's go.mod pins for `modulePath`, e.g. v1.37.2. */
async function pinned(moduleDir: string, modulePath: string): Promise<string> {
  const gomod = await readFile(path.join(pinsDir, moduleDir, 'go.mod'), 'utf8');
  const m = new RegExp(`^require ${modulePath.replace(/\./g, '\\.')} (v\\S+)`, 'm').exec(gomod);
  if (!m) throw new Error(`${moduleDir}/go.mod pins no ${modulePath}`);
  return m[1];
}

/** What upstream tool `name` prints on stdout and stderr, whatever its exit status
 * (`multus-daemon -version` exits 4). */
async function printed(name: string, args: string[]): Promise<string> {
  const file = await upstreamTool(name);
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(new Error(`${file} ${args.join(' ')}: ${err.message}`));
      else resolve(stdout + stderr);
    });
    child.stdin?.end();
  });
}

/**
 * Every binary `make upstream` builds from the modules under scripts/upstream (the first word of each
 * `commands` line); modules with an `on-demand` file (e2e, coredns) are built only when named.
 */
async function pinnedCommands(): Promise<string[]> {
  const modules = (await readdir(pinsDir, { withFileTypes: true })).filter((e) => e.isDirectory());
  const names: string[] = [];
  for (const m of modules) {
    if (existsSync(path.join(pinsDir, m.name, 'on-demand'))) continue;
    const commands = await readFile(path.join(pinsDir, m.name, 'commands'), 'utf8');
    for (const line of commands.split('\n')) {
      if (line.trim() && !line.trim().startsWith('#')) names.push(line.trim().split(/\s+/)[0]);
    }
  }
  return names;
}

test('the built binaries report the versions pinned in scripts/upstream', async () => {
  const k8s = await pinned('k8s', 'k8s.io/kubernetes');
  const kubectl = JSON.parse(
    (await run(await upstreamTool('kubectl'), ['version', '--client', '-o', 'json'])).stdout,
  );
  expect(kubectl.clientVersion.gitVersion).toBe(k8s);
  for (const name of [
    'kube-apiserver',
    'kubelet',
    'kube-controller-manager',
    'kube-scheduler',
    'kube-proxy',
  ]) {
    expect((await run(await upstreamTool(name), ['--version'])).stdout.trim()).toBe(`Kubernetes ${k8s}`);
  }

  const etcd = await pinned('etcd', 'go.etcd.io/etcd/server/v3');
  expect((await run(await upstreamTool('etcd'), ['--version'])).stdout).toContain(
    `etcd Version: ${etcd.slice(1)}`,
  );

  const helm = await pinned('helm', 'helm.sh/helm/v3');
  expect((await run(await upstreamTool('helm'), ['version', '--short'])).stdout.trim()).toBe(helm);

  await upstreamTool('cnitool');

  const containerd = await pinned('containerd', 'github.com/containerd/containerd/v2');
  for (const name of ['containerd', 'ctr']) {
    expect((await run(await upstreamTool(name), ['--version'])).stdout.trim()).toBe(
      `${name} github.com/containerd/containerd/v2 ${containerd}`,
    );
  }
  expect(await printed('containerd-shim-runc-v2', ['-v'])).toMatch(
    new RegExp(`^\\s*Version:\\s+${containerd.replace(/\./g, '\\.')}$`, 'm'),
  );

  const runc = await pinned('runc', 'github.com/opencontainers/runc');
  expect((await run(await upstreamTool('runc'), ['--version'])).stdout).toMatch(
    new RegExp(`^runc version ${runc.slice(1).replace(/\./g, '\\.')}$`, 'm'),
  );

  const crictl = await pinned('crictl', 'sigs.k8s.io/cri-tools');
  expect((await run(await upstreamTool('crictl'), ['--version'])).stdout.trim()).toBe(
    `crictl version ${crictl}`,
  );

  const multus = await pinned('multus', 'gopkg.in/k8snetworkplumbingwg/multus-cni.v4');
  for (const name of ['multus-daemon', 'multus-shim']) {
    expect(await printed(name, ['-version'])).toContain(`${name}: version:${multus}(clean,released)`);
  }
  expect(await printed('install_multus', ['--help'])).toContain('--type');
});

test('runc is built with seccomp, so it can apply the RuntimeDefault profile', async () => {
  const features = JSON.parse((await run(await upstreamTool('runc'), ['features'])).stdout);
  expect(features.linux.seccomp.enabled).toBe(true);
});

test('a module env file that is not KEY=VALUE is rejected, naming the file and the line', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cnupstream-'));
  try {
    await writeFile(path.join(dir, 'go.mod'), 'module example.test/bad\n\ngo 1.26.0\n');
    await writeFile(path.join(dir, 'go.sum'), '');
    await writeFile(path.join(dir, 'commands'), 'bad example.test/bad\n');
    await writeFile(path.join(dir, 'env'), '# cgo\nCGO_ENABLED 1\n');
    const build = run(
      'env',
      [
        `CASTNET_CACHE=${dir}/cache`,
        `CASTNET_UPSTREAM_STORE=${dir}/store`,
        path.join(pinsDir, 'build.sh'),
        dir,
      ],
      { timeoutMs: 30_000 },
    );
    await expect(build).rejects.toThrow(`${dir}/env: expected KEY=VALUE without spaces, got 'CGO_ENABLED 1'`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a fresh cache is filled from the machine-wide store, and a second run is a no-op', async () => {
  const cache = await mkdtemp(path.join(os.tmpdir(), 'cnupstream-'));
  try {
    const build = () =>
      run('env', [`CASTNET_CACHE=${cache}`, path.join(pinsDir, 'build.sh')], { timeoutMs: 120_000 });
    const first = await build();
    // Nothing was compiled: the same pins were built when `make upstream` ran.
    expect(first.stderr).not.toMatch(/go build/);
    for (const name of await pinnedCommands()) {
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
