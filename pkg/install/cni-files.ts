// What castnet puts into the node's CNI directories: the castnet-cni binary (as `castnet`, its type) and, as the primary
// network, its conflist. Both are written to a temporary name and renamed, so the runtime sees either
// the old file or the new one, never a partial one; the conflist only after the binary it names.
import { copyFile, chmod, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CURRENT_VERSION, DEFAULT_AGENT_SOCKET, PLUGIN_TYPE } from '../cni/types.js';
import { errorMessage } from '../base/errors.js';

/** The plugin's file name in the image. */
export const CNI_BINARY = 'castnet-cni';
/** Its name in the node's CNI bin dir: a runtime runs the plugin named by the config's `type`. */
export const INSTALLED_NAME = PLUGIN_TYPE;

export type InstallMode = 'primary' | 'secondary';

export interface CniInstall {
  mode: InstallMode;
  /** The castnet-cni binary to install (in the image). */
  source: string;
  binDir: string;
  confDir: string;
  conflistName: string;
  /** The VirtualNetwork primary-mode pods attach to. */
  network: string;
  mtu?: number;
  agentSocket?: string;
}

/** The primary-mode conflist. Pure. */
export function primaryConflist(o: Pick<CniInstall, 'network' | 'mtu' | 'agentSocket'>): object {
  return {
    cniVersion: CURRENT_VERSION,
    name: 'castnet',
    plugins: [
      {
        type: PLUGIN_TYPE,
        network: o.network,
        agentSocket: o.agentSocket ?? DEFAULT_AGENT_SOCKET,
        ...(o.mtu ? { mtu: o.mtu } : {}),
        capabilities: { mac: true },
      },
    ],
  };
}

async function writeAtomically(file: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${file}.castnet-tmp-${process.pid}`;
  try {
    await write(tmp);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new Error(`failed to install ${file}: ${errorMessage(err)}`, { cause: err });
  }
}

/** Installs the binary, then (primary mode) the conflist. Returns the files written. */
export async function installCni(o: CniInstall): Promise<string[]> {
  const binary = join(o.binDir, INSTALLED_NAME);
  await writeAtomically(binary, async (tmp) => {
    await copyFile(o.source, tmp);
    await chmod(tmp, 0o755);
  });
  if (o.mode === 'secondary') return [binary];
  const conflist = join(o.confDir, o.conflistName);
  const text = JSON.stringify(primaryConflist(o), null, 2) + '\n';
  await writeAtomically(conflist, (tmp) => writeFile(tmp, text, { mode: 0o644 }));
  return [binary, conflist];
}

/** Whether a conflist text is castnet's own (so uninstall never removes another plugin's). Pure. */
export function isCastnetConflist(text: string): boolean {
  try {
    const c = JSON.parse(text) as { plugins?: Array<{ type?: unknown }> };
    return Array.isArray(c.plugins) && c.plugins.some((p) => p?.type === PLUGIN_TYPE);
  } catch {
    return false;
  }
}

/** Removes the conflist (only if castnet's), then the binary. Returns the files removed. */
export async function removeCniFiles(
  o: Pick<CniInstall, 'binDir' | 'confDir' | 'conflistName'>,
): Promise<string[]> {
  const removed: string[] = [];
  const conflist = join(o.confDir, o.conflistName);
  const text = await readFile(conflist, 'utf8').catch(() => undefined);
  if (text !== undefined && isCastnetConflist(text)) {
    await rm(conflist, { force: true });
    removed.push(conflist);
  }
  const binary = join(o.binDir, INSTALLED_NAME);
  const hadBinary = await stat(binary).then(
    () => true,
    () => false,
  );
  await rm(binary, { force: true });
  if (hadBinary) removed.push(binary);
  return removed;
}
