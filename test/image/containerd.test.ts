// The images as the cluster's nodes take them: a private containerd (from `make upstream`, with its own
// root, state and socket in a temp dir) imports each docker archive with `ctr images import` into the
// kubelet's namespace, and runs them with runc. Skipped until `make upstream` builds containerd, ctr,
// the runc shim and runc. Containers get a fresh network namespace with only loopback.
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run, stop } from '../../pkg/sys/exec.js';
import { BuiltImage, buildImages, catchesSignal, imageNames } from '../harness/image.js';
import { upstreamBin } from '../harness/upstream.js';
import { waitFor } from '../../pkg/base/async.js';

const TOOLS = ['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc'];
const ready = TOOLS.every((t) => existsSync(path.join(upstreamBin, t)));
// containerd finds the shim, and the shim runc, on PATH.
const PATH = `${upstreamBin}:${process.env.PATH}`;

let dir: string;
let containerd: ChildProcess | undefined;
let images: Map<string, BuiltImage>;

/** The command line of `ctr args` against the private containerd, in the kubelet's namespace. */
const ctrArgv = (args: string[]) => [
  `PATH=${PATH}`,
  'ctr',
  '--address',
  path.join(dir, 'containerd.sock'),
  '-n',
  'k8s.io',
  ...args,
];

/** Runs `ctr args`; resolves with stdout and stderr. */
const ctr = (args: string[], opts: { timeoutMs?: number } = {}) => run('env', ctrArgv(args), opts);

async function startContainerd(): Promise<void> {
  dir = await mkdtemp(path.join(tmpdir(), 'castnet-containerd-'));
  await writeFile(
    path.join(dir, 'config.toml'),
    `version = 3
root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${dir}/containerd.sock"
`,
  );
  containerd = spawn(path.join(upstreamBin, 'containerd'), ['--config', path.join(dir, 'config.toml')], {
    env: { ...process.env, PATH },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  containerd.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  await waitFor(async () => (await ctr(['version'])) !== undefined, {
    what: 'containerd to serve',
    timeoutMs: 60_000,
    observed: () => `its log ends: ${log}`,
  });
}

beforeAll(async () => {
  if (!ready) return;
  ({ images } = await buildImages(imageNames()));
  await startContainerd();
}, 15 * 60_000);

afterAll(async () => {
  if (containerd) await stop(containerd, 10_000);
  if (!dir) return;
  // Snapshots a failed run left mounted, deepest first, before the directory goes.
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((m) => m?.startsWith(dir + '/'))
    .sort()
    .reverse();
  for (const m of mounts) await run('umount', ['-l', m]).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}, 60_000);

/** Runs a container to completion (`runOptions`: ctr run's, e.g. mounts); resolves with its exit
 * status and output (stdout, then stderr). */
function runContainer(
  ref: string,
  id: string,
  argv: string[] = [],
  runOptions: string[] = [],
): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('env', ctrArgv(['run', '--rm', ...runOptions, ref, id, ...argv]), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, output: stdout + stderr });
    });
  });
}

(ready ? describe : describe.skip)(
  'the images in containerd (needs `make upstream` to build containerd)',
  () => {
    test('ctr images import takes each archive under its reference, and unpacks it', async () => {
      for (const { tarball } of images.values())
        await ctr(['images', 'import', tarball], { timeoutMs: 120_000 });
      const { stdout } = await ctr(['images', 'check']);
      for (const { ref } of images.values()) {
        const line = stdout.split('\n').find((l) => l.startsWith(ref + ' '));
        // `check` ends each line with whether the image is unpacked into the snapshotter.
        expect({ ref, line: line?.replace(/\s+/g, ' ').trim() }).toEqual({
          ref,
          line: expect.stringMatching(/ complete \(\d+\/\d+\) .* true$/),
        });
      }
    }, 240_000);

    test('the castnet image runs its entrypoint, as its non-root user', async () => {
      const ref = images.get('castnet')!.ref;
      // Without a command castnet prints its usage and exits 1, as commander does.
      expect(await runContainer(ref, 'castnet-entrypoint')).toEqual({
        status: 1,
        output: expect.stringMatching(/^Usage: castnet /m),
      });
      expect(await runContainer(ref, 'castnet-id', ['id', '-u'])).toEqual({
        status: 0,
        output: expect.stringMatching(/^65532$/m),
      });
      expect(await runContainer(ref, 'castnet-ip', ['/bin/sh', '-c', 'ip -V'])).toEqual({
        status: 0,
        output: expect.stringMatching(/iproute2-/),
      });
    }, 120_000);

    test('the workload image runs its tools', async () => {
      const { status, output: out } = await runContainer(images.get('workload')!.ref, 'workload-tools', [
        '/bin/sh',
        '-c',
        'ip -V; socat -V | head -2; iperf -v 2>&1; true',
      ]);
      expect(out).toMatch(/iproute2-/);
      expect(out).toMatch(/^socat version 1\./m);
      expect(out).toMatch(/^iperf version 2\./m);
      expect(status).toBe(0);
    }, 120_000);

    (imageNames().includes('multus') ? test : test.skip)(
      "multus' init container command installs the shim and passthru into the node's CNI directory",
      async () => {
        const cniBin = await mkdtemp(path.join(dir, 'cni-bin-'));
        // As upstream's thick DaemonSet runs it, with the node's /opt/cni/bin at /host/opt/cni/bin.
        const { status, output } = await runContainer(
          images.get('multus')!.ref,
          'multus-install',
          ['/usr/src/multus-cni/bin/install_multus', '-d', '/host/opt/cni/bin', '-t', 'thick'],
          [`--mount=type=bind,src=${cniBin},dst=/host/opt/cni/bin,options=rbind:rw`],
        );
        expect({ status, output }).toEqual({ status: 0, output: expect.stringContaining('copy succeeded') });
        expect((await readdir(cniBin)).sort()).toEqual(['multus-shim', 'passthru']);
      },
      120_000,
    );

    test('pause runs as the container PID 1 and exits 0 on SIGTERM', async () => {
      const id = 'pause-sigterm';
      const child = spawn('env', ctrArgv(['run', '--rm', images.get('pause')!.ref, id]), { stdio: 'ignore' });
      try {
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        // The task's host PID, once pause catches SIGTERM (as PID 1 an uncaught SIGTERM does nothing).
        const pid = await waitFor(
          async () => {
            const { stdout } = await ctr(['task', 'ls']);
            const row = stdout.split('\n').find((l) => l.startsWith(id + ' '));
            const candidate = row ? Number(row.trim().split(/\s+/)[1]) : 0;
            return candidate > 0 && (await catchesSignal(candidate, 'SIGTERM')) ? candidate : undefined;
          },
          { what: 'the pause task to catch SIGTERM', timeoutMs: 30_000 },
        );
        expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+1$/m);
        await ctr(['task', 'kill', '--signal', 'SIGTERM', id]);
        expect(await exited).toBe(0);
      } finally {
        await ctr(['task', 'kill', '--signal', 'SIGKILL', id]).catch(() => undefined);
        await stop(child);
        await ctr(['container', 'rm', id]).catch(() => undefined);
      }
    }, 120_000);
  },
);
