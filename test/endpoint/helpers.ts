// Shared fixtures of the endpoint kernel tests: namespaces, a node, network configs, and ip(8) views.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddRequest, DelRequest, NetConf } from '../../pkg/endpoint/manager.js';
import {
  createEndpointManager,
  type EndpointManagerOptions,
  type NodeEndpointManager,
} from '../../pkg/endpoint/node-manager.js';
import type { NetworkSpec } from '../../pkg/lookup/port.js';

export const nsPath = (n: string): string => `/var/run/netns/${n}`;

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

export function ipJson<T = Record<string, unknown>[]>(...args: string[]): T {
  return JSON.parse(ip('-j', ...args)) as T;
}

export function addNs(name: string): string {
  ip('netns', 'add', name);
  return nsPath(name);
}

export function delNs(name: string): void {
  spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
}

/** Whether a ping from namespace `ns` to `addr` is answered (three tries: a loaded machine may drop one). */
export function pings(ns: string, addr: string): boolean {
  for (let i = 0; i < 3; i++) {
    if (
      spawnSync('ip', ['netns', 'exec', ns, 'ping', '-c1', '-W1', addr], { stdio: 'ignore' }).status === 0
    ) {
      return true;
    }
  }
  return false;
}

export const BLUE: NetworkSpec = {
  name: 'blue',
  id: 0x42,
  subnets: ['10.44.0.0/16', 'fd44::/64'],
  mtu: 1400,
  multicast: true,
  broadcast: true,
};

export function conf(over: Partial<NetConf> = {}, raw: Record<string, unknown> = {}): NetConf {
  const cniVersion = over.cniVersion ?? '1.1.0';
  const name = over.name ?? 'blue';
  return {
    cniVersion,
    name,
    type: 'castnet',
    network: name,
    agentSocket: '/run/castnet/agent.sock',
    raw: { cniVersion, name, type: 'castnet', ...(over.ipam ? { ipam: over.ipam } : {}), ...raw },
    ...over,
  };
}

export const CNI_PATH = '/usr/lib/cni';

export function addReq(
  containerId: string,
  netns: string,
  c: NetConf = conf(),
  extra: Partial<AddRequest> = {},
): AddRequest {
  return { containerId, ifname: 'eth0', netns, conf: c, args: {}, cniPath: CNI_PATH, ...extra };
}

export function delReq(
  containerId: string,
  netns: string | undefined,
  c: NetConf = conf(),
  ifname = 'eth0',
): DelRequest {
  return { containerId, ifname, netns, conf: c, args: {}, cniPath: CNI_PATH };
}

/** A node: its own namespace for bridges and host veths, a state directory, and a manager. */
export class TestNode {
  readonly netns: string;
  readonly stateDir: string;
  manager: NodeEndpointManager;

  constructor(
    readonly name: string,
    private readonly base: Partial<EndpointManagerOptions> = {},
  ) {
    this.netns = addNs(name);
    this.stateDir = mkdtempSync(join(tmpdir(), `${name}-`));
    this.manager = this.start();
  }

  /** A new manager on the same state, as after an agent restart. */
  start(over: Partial<EndpointManagerOptions> = {}): NodeEndpointManager {
    return createEndpointManager({
      stateDir: this.stateDir,
      nodeName: this.name,
      poolIndex: 1,
      networks: [BLUE],
      hostNetns: nsPath(this.name),
      ...this.base,
      ...over,
    });
  }

  restart(over: Partial<EndpointManagerOptions> = {}): NodeEndpointManager {
    void this.manager.dispose();
    this.manager = this.start(over);
    return this.manager;
  }

  /** Host-side links named like castnet's veths. */
  hostVeths(): string[] {
    return ipJson<{ ifname: string }[]>('-n', this.name, 'link', 'show')
      .map((l) => l.ifname)
      .filter((n) => /^cn[0-9a-f]{11}$/.test(n));
  }

  destroy(): void {
    void this.manager?.dispose();
    delNs(this.name);
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}
