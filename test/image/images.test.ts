// The cluster's images, checked without a container engine: scripts/cluster/images.sh builds them (or
// finds them in .cache/images), each docker archive is unpacked, and its programs run from the image's
// own root filesystem under chroot, so nothing of this machine's is used. Needs root (chroot, unshare).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { waitFor } from '../../pkg/base/async.js';
import { GUEST_READY, qemuArgs } from '../../pkg/lab/guest.js';
import { repoRoot } from '../harness/cni.js';
import { dockerfileText, finalImageConfig } from '../harness/dockerfile.js';
import {
  BuiltImage,
  buildImages,
  catchesSignal,
  imageNames,
  runInImage,
  UnpackedImage,
  unpackImage,
} from '../harness/image.js';

const BUILD_TIMEOUT = 15 * 60_000;

let built: Map<string, BuiltImage>;
const unpacked = new Map<string, UnpackedImage>();
const image = (name: string) => unpacked.get(name)!;

beforeAll(async () => {
  const names = imageNames();
  ({ images: built } = await buildImages(names));
  for (const name of names) unpacked.set(name, await unpackImage(built.get(name)!.tarball));
}, BUILD_TIMEOUT);

afterAll(async () => {
  await Promise.all([...unpacked.values()].map((i) => i.remove()));
});

/** A shell command's output in the image, whatever its exit status (version flags often exit 1). */
async function shellOutput(name: string, script: string): Promise<string> {
  const { stdout } = await runInImage(image(name), ['/bin/sh', '-c', `(${script}) 2>&1; true`], {
    user: '0:0',
  });
  return stdout;
}

function expectIntact(name: string, repository: string): void {
  const img = image(name);
  expect(img.repoTags).toEqual([built.get(name)!.ref]);
  expect(built.get(name)!.ref.startsWith(`${repository}:`)).toBe(true);
  expect({ os: img.config.os, architecture: img.config.architecture }).toEqual({
    os: 'linux',
    architecture: 'amd64',
  });
  // What a runtime verifies on import: each layer is the one the config declares.
  expect(img.layerDigests).toEqual(img.config.rootfs.diff_ids);
}

describe('castnet image', () => {
  test("is named for the chart's appVersion and its layer is the one its config declares", () => {
    const appVersion = /^appVersion:\s*"?([^"\s]+)"?/m.exec(
      readFileSync(path.join(repoRoot, 'charts/castnet/Chart.yaml'), 'utf8'),
    )![1];
    expectIntact('castnet', 'localhost/castnet/castnet');
    expect(built.get('castnet')!.ref).toMatch(
      new RegExp(`:${appVersion.replace(/\./g, '\\.')}-[0-9a-f]{16}$`),
    );
  });

  test('runs the way the Dockerfile says: its ENTRYPOINT, USER and WORKDIR', () => {
    const dockerfile = finalImageConfig(dockerfileText());
    const config = image('castnet').config.config;
    expect({ Entrypoint: config.Entrypoint, User: config.User, WorkingDir: config.WorkingDir }).toEqual({
      Entrypoint: dockerfile.entrypoint,
      User: dockerfile.user,
      WorkingDir: dockerfile.workdir,
    });
  });

  test('its entrypoint runs from the image alone, as the image user', async () => {
    const { stdout } = await runInImage(image('castnet'), [
      ...image('castnet').config.config.Entrypoint!,
      '--help',
    ]);
    expect(stdout).toMatch(/^Usage: castnet /m);
    expect(stdout).toMatch(/^\s+agent\b/m);
  });

  test('castnet-cni answers the CNI VERSION command', async () => {
    const { stdout } = await runInImage(image('castnet'), ['/opt/castnet/bin/castnet-cni'], {
      env: { CNI_COMMAND: 'VERSION' },
      input: JSON.stringify({ cniVersion: '1.1.0' }),
    });
    const answer = JSON.parse(stdout) as { cniVersion: string; supportedVersions: string[] };
    expect(answer.supportedVersions).toContain('1.1.0');
  });

  test("the chart's agent container command runs: /bin/sh, cat and the launcher", async () => {
    // Every container of the rendered manifests that starts with /bin/sh, as the kubelet runs it.
    const docs = parseAllDocuments(readFileSync(path.join(repoRoot, 'deploy/castnet-primary.yaml'), 'utf8'));
    const shellCommands = docs
      .flatMap((d) => {
        const spec = (d.toJS() as { spec?: { template?: { spec?: Record<string, unknown> } } })?.spec
          ?.template?.spec;
        return [
          ...((spec?.initContainers as Array<{ command?: string[] }>) ?? []),
          ...((spec?.containers as Array<{ command?: string[] }>) ?? []),
        ];
      })
      .map((c) => c.command)
      .filter((c): c is string[] => c?.[0] === '/bin/sh');
    expect(shellCommands.length).toBeGreaterThan(0);
    await mkdir(path.join(image('castnet').rootfs, 'var/lib/castnet'), { recursive: true });
    await writeFile(path.join(image('castnet').rootfs, 'var/lib/castnet/pool-index'), '3\n');
    for (const command of shellCommands) {
      // `$$` is the kubelet's escape for a literal `$`; --help stands in for the container's args.
      const argv = command.map((a) => a.replace(/\$\$/g, '$'));
      const { stdout } = await runInImage(image('castnet'), [...argv, '--help'], { user: '0:0' });
      expect(stdout).toMatch(/^Usage: castnet \w+/m);
    }
  });

  test('ip and bridge are iproute2, and nft is there, also from /bin/sh (the agent runs them)', async () => {
    const out = await shellOutput('castnet', 'ip -V; bridge -V; nft --version');
    expect(out).toMatch(/^ip utility, iproute2-/m);
    expect(out).toMatch(/^bridge utility, /m);
    expect(out).toMatch(/^nftables v\d/m);
  });

  test('node_modules holds the production dependencies and none of the development ones', async () => {
    const lock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
    };
    const inImage = (p: string) =>
      existsSync(path.join(image('castnet').rootfs, 'opt/castnet', p, 'package.json'));
    const entries = Object.entries(lock.packages).filter(([p]) => p.startsWith('node_modules/'));
    const production = entries.filter(([, e]) => !e.dev && !e.optional && !e.devOptional).map(([p]) => p);
    const development = entries.filter(([, e]) => e.dev).map(([p]) => p);
    expect(production.length).toBeGreaterThan(5);
    expect(development.length).toBeGreaterThan(5);
    expect(production.filter((p) => !inImage(p))).toEqual([]);
    expect(development.filter(inImage)).toEqual([]);
    const pkg = JSON.parse(
      await readFile(path.join(image('castnet').rootfs, 'opt/castnet/package.json'), 'utf8'),
    ) as {
      name: string;
    };
    expect(pkg.name).toBe('castnet');
  });
});

describe('workload image', () => {
  test('is named by its content and its layer is the one its config declares', () => {
    expectIntact('workload', 'localhost/castnet/workload');
    expect(built.get('workload')!.ref).toMatch(/:[0-9a-f]{16}$/);
  });

  test('has the test tools: sh, sleep, iproute2, socat, iperf2, mcfirst, ssmping, tcpdump', async () => {
    const out = await shellOutput(
      'workload',
      'sleep 0 && echo slept; ip -V; socat -V; iperf -v; mcfirst; ssmping; tcpdump --version; id tcpdump',
    );
    expect(out).toMatch(/^slept$/m);
    expect(out).toMatch(/^ip utility, iproute2-/m);
    expect(out).toMatch(/^socat version 1\./m);
    expect(out).toMatch(/^iperf version 2\./m);
    expect(out).toMatch(/^mcfirst version /m);
    expect(out).toMatch(/^ssmping version /m);
    expect(out).toMatch(/^tcpdump version /m);
    // tcpdump drops root privileges to this user once its capture is open.
    expect(out).toMatch(/^uid=\d+\(tcpdump\)/m);
  });

  test('its default command keeps the pod running', () => {
    const { Entrypoint, Cmd } = image('workload').config.config;
    expect([...Entrypoint!, ...Cmd!]).toEqual(['/bin/sh', '-c', 'sleep infinity']);
  });
});

describe('pause image', () => {
  test('is localhost/castnet/pause:3.10 (the cluster pins it), holding only /pause', async () => {
    expectIntact('pause', 'localhost/castnet/pause');
    expect(built.get('pause')!.ref).toBe('localhost/castnet/pause:3.10');
    expect(image('pause').config.config.Entrypoint).toEqual(['/pause']);
    expect(await readdir(image('pause').rootfs)).toEqual(['pause']);
  });

  test('as PID 1 of its own PID namespace it waits, and exits 0 on SIGTERM', async () => {
    const img = image('pause');
    const child = spawn(
      'unshare',
      [
        '--pid',
        '--fork',
        'chroot',
        `--userspec=${img.config.config.User}`,
        img.rootfs,
        ...img.config.config.Entrypoint!,
      ],
      { stdio: 'ignore' },
    );
    try {
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      // Its host PID (unshare's child) once it catches SIGTERM: signalling earlier would do nothing.
      const pid = await waitFor(
        async () => {
          const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim();
          const candidate = children ? Number(children.split(' ')[0]) : undefined;
          return candidate && (await catchesSignal(candidate, 'SIGTERM')) ? candidate : undefined;
        },
        { what: 'pause to catch SIGTERM', timeoutMs: 30_000 },
      );
      expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+1$/m);
      process.kill(pid, 'SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

(imageNames().includes('multus') ? describe : describe.skip)(
  'multus image (needs `make upstream` to build multus)',
  () => {
    test("has upstream's thick layout and its installer copies the shim and passthru onto the node", async () => {
      expectIntact('multus', 'localhost/castnet/multus');
      expect(image('multus').config.config.Entrypoint).toEqual(['/usr/src/multus-cni/bin/multus-daemon']);
      const hostCniBin = path.join(image('multus').rootfs, 'host/opt/cni/bin');
      await mkdir(hostCniBin, { recursive: true });
      await runInImage(image('multus'), [
        '/usr/src/multus-cni/bin/install_multus',
        '-d',
        '/host/opt/cni/bin',
        '-t',
        'thick',
      ]);
      expect((await readdir(hostCniBin)).sort()).toEqual(['multus-shim', 'passthru']);
    });
  },
);

(imageNames().includes('guest') ? describe : describe.skip)(
  'guest image (needs `make guest-image` to build the guest kernel and initramfs)',
  () => {
    test('is named by its content and has what a VM pod runs: ip, sysctl, socat, qemu', async () => {
      expectIntact('guest', 'localhost/castnet/guest');
      expect(built.get('guest')!.ref).toMatch(/:[0-9a-f]{16}$/);
      const out = await shellOutput(
        'guest',
        'ip -V; socat -V; command -v sysctl; qemu-system-x86_64 --version',
      );
      expect(out).toMatch(/^ip utility, iproute2-/m);
      expect(out).toMatch(/^socat version 1\./m);
      expect(out).toMatch(/^\/usr\/bin\/sysctl$/m);
      expect(out).toMatch(/^QEMU emulator version /m);
    });

    test("qemu boots the image's guest under TCG with a virtio-net NIC, from the image alone", async () => {
      const img = image('guest');
      const mac = '02:00:00:00:77:01';
      // The command line the cluster's VM pod runs (test/cluster/vm-guest.test.ts), with user-mode
      // networking in place of its tap: the NIC's option ROM and the firmware must be in the image.
      const args = qemuArgs(
        { name: 'image', tap: 'tap1', mac, addresses: ['10.99.0.2/24'], memoryMiB: 128 },
        'tcg',
        { kernel: '/guest/vmlinuz', initramfs: '/guest/initramfs.gz' },
      ).map((a) => (a.startsWith('tap,id=net0,') ? 'user,id=net0' : a));
      const child = spawn(
        'env',
        [
          '-i',
          ...(img.config.config.Env ?? []),
          '/usr/sbin/chroot',
          img.rootfs,
          'qemu-system-x86_64',
          ...args,
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString('latin1')));
      child.stderr.on('data', (c: Buffer) => (out += c.toString('latin1')));
      try {
        await waitFor(() => out.includes(GUEST_READY) || child.exitCode !== null || undefined, {
          what: 'the guest to boot',
          timeoutMs: 120_000,
          intervalMs: 100,
          observed: () => out.slice(-500),
        });
      } finally {
        child.kill('SIGKILL');
      }
      expect(out).toContain(`${GUEST_READY} ${mac}`);
    }, 150_000);
  },
);

describe('caching and reproducibility', () => {
  test(
    'a rerun with nothing changed reuses the tarballs',
    async () => {
      const before = ['pause', 'workload'].map((n) => statSync(built.get(n)!.tarball).ino);
      const { images, log } = await buildImages(['pause', 'workload']);
      expect(log).toMatch(/pause:3\.10 is up to date/);
      expect(log).toMatch(/workload:[0-9a-f]+ is up to date/);
      expect(['pause', 'workload'].map((n) => images.get(n)!.ref)).toEqual(
        ['pause', 'workload'].map((n) => built.get(n)!.ref),
      );
      expect(['pause', 'workload'].map((n) => statSync(images.get(n)!.tarball).ino)).toEqual(before);
    },
    BUILD_TIMEOUT,
  );

  test(
    'the same inputs give the same bytes',
    async () => {
      const cache = await mkdtemp(path.join(tmpdir(), 'castnet-image-cache-'));
      try {
        const { images } = await buildImages(['workload'], { CASTNET_CACHE: cache });
        expect(images.get('workload')!.tarball.startsWith(cache)).toBe(true);
        expect(
          readFileSync(images.get('workload')!.tarball).equals(readFileSync(built.get('workload')!.tarball)),
        ).toBe(true);
      } finally {
        await rm(cache, { recursive: true, force: true });
      }
    },
    BUILD_TIMEOUT,
  );

  test(
    'a bad CASTNET_IMAGE_TAG is refused, naming the variable',
    async () => {
      await expect(buildImages(['castnet'], { CASTNET_IMAGE_TAG: 'no spaces!' })).rejects.toThrow(
        /CASTNET_IMAGE_TAG: 'no spaces!' is not a valid image tag/,
      );
    },
    BUILD_TIMEOUT,
  );
});
