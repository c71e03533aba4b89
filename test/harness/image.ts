// The cluster's images as scripts/cluster/images.sh builds them (docker archives under .cache/images),
// and their contents unpacked for tests that check them without a container engine.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../pkg/sys/exec.js';
import { repoRoot } from './cni.js';
import { upstreamBin } from './upstream.js';

export const imagesScript = path.join(repoRoot, 'scripts/cluster/images.sh');

/** Upstream's binaries the multus image is made of (`make upstream` builds them into .cache/bin). */
const MULTUS_BINS = ['multus-daemon', 'multus-shim', 'install_multus', 'passthru'];

/** The guest's kernel and initramfs the guest image carries (`make guest-image` builds them). */
const GUEST_FILES = ['vmlinuz', 'initramfs.gz'];

/** The images this machine can build: multus only once `make upstream` has built its binaries, guest
 * once `make guest-image` has built the guest's kernel and initramfs. */
export function imageNames(): string[] {
  const multus = MULTUS_BINS.every((b) => existsSync(path.join(upstreamBin, b)));
  const guest = GUEST_FILES.every((f) => existsSync(path.join(repoRoot, '.cache/guest', f)));
  return ['castnet', 'pause', 'workload', ...(multus ? ['multus'] : []), ...(guest ? ['guest'] : [])];
}

export interface BuiltImage {
  ref: string;
  tarball: string;
}

/** Builds (or finds cached) the named images; `env` adds to the script's environment. */
export async function buildImages(
  names: string[],
  env: Record<string, string> = {},
): Promise<{ images: Map<string, BuiltImage>; log: string }> {
  const { stdout, stderr } = await run(
    'env',
    [...Object.entries(env).map(([k, v]) => `${k}=${v}`), imagesScript, ...names],
    { timeoutMs: 15 * 60_000 },
  );
  const images = new Map<string, BuiltImage>();
  for (const line of stdout.trim().split('\n')) {
    const [ref, tarball] = line.split(' ');
    images.set(/\/([^/:]+):/.exec(ref)![1], { ref, tarball });
  }
  return { images, log: stderr };
}

/** The image config's fields a runtime uses (the docker/OCI image config's "config" object). */
export interface RunConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  User?: string;
  WorkingDir?: string;
  Env?: string[];
}

export interface UnpackedImage {
  /** Where the archive was unpacked; remove() deletes it. */
  dir: string;
  /** The image's root filesystem (its layers applied in order). */
  rootfs: string;
  repoTags: string[];
  config: { architecture: string; os: string; config: RunConfig; rootfs: { diff_ids: string[] } };
  /** sha256:<hex> of each layer tar, as a runtime verifies them against the config's diff_ids. */
  layerDigests: string[];
  remove(): Promise<void>;
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** Unpacks a docker archive (manifest.json, config, layer tars) into a temp dir. */
export async function unpackImage(tarball: string): Promise<UnpackedImage> {
  const dir = await mkdtemp(path.join(tmpdir(), 'castnet-image-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    const archive = path.join(dir, 'archive');
    const rootfs = path.join(dir, 'rootfs');
    await mkdir(archive);
    await mkdir(rootfs);
    await run('tar', ['-xf', tarball, '-C', archive]);
    const [manifest] = JSON.parse(await readFile(path.join(archive, 'manifest.json'), 'utf8')) as Array<{
      Config: string;
      RepoTags: string[];
      Layers: string[];
    }>;
    const config = JSON.parse(
      await readFile(path.join(archive, manifest.Config), 'utf8'),
    ) as UnpackedImage['config'];
    const layerDigests: string[] = [];
    for (const layer of manifest.Layers) {
      layerDigests.push(await sha256(path.join(archive, layer)));
      await run('tar', ['-xf', path.join(archive, layer), '-C', rootfs, '--numeric-owner']);
    }
    return { dir, rootfs, repoTags: manifest.RepoTags, config, layerDigests, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** Runs a command in the image's root filesystem only (chroot), with the image's PATH and user. */
export function runInImage(
  image: UnpackedImage,
  argv: string[],
  opts: { input?: string; env?: Record<string, string>; user?: string; timeoutMs?: number } = {},
) {
  const user = opts.user ?? image.config.config.User ?? '0:0';
  const env = [
    ...(image.config.config.Env ?? []),
    ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
  ];
  return run('env', ['-i', ...env, '/usr/sbin/chroot', `--userspec=${user}`, image.rootfs, ...argv], opts);
}

/** Whether process `pid` has a handler for `signal` installed (its bit in SigCgt of /proc/PID/status):
 * signalling a program such as pause before that would kill it, or do nothing when it is PID 1. */
export async function catchesSignal(pid: number, signal: NodeJS.Signals): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const caught = /^SigCgt:\s+([0-9a-f]+)$/m.exec(status)?.[1];
  const bit = 1n << BigInt(constants.signals[signal] - 1);
  return caught !== undefined && (BigInt(`0x${caught}`) & bit) !== 0n;
}
