// The contract between the agent's CNI server (pkg/agent/cniserver) and endpoint wiring (pkg/endpoint).
import type { CniResult } from '../cni/types';
import type { PodRef, VmRef } from '../lookup/port';

/** The validated network configuration of one CNI invocation (see pkg/cni/netconf.ts). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  /** VirtualNetwork name; defaults to `name`. */
  network: string;
  agentSocket: string;
  mtu?: number;
  /** Absent or `{type: "castnet"}`: castnet's per-node pool. Anything else is delegated to that plugin. */
  ipam?: { type: string; [k: string]: unknown };
  runtimeConfig?: { mac?: string; ips?: string[] };
  prevResult?: CniResult;
  /** The raw stdin object, for delegation to IPAM plugins. */
  raw: Record<string, unknown>;
}

/** One attachment: what CNI identifies by (containerId, ifname). */
export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface AddRequest extends Attachment {
  netns: string;
  conf: NetConf;
  /** CNI_ARGS as key/value pairs (K8S_POD_*, MAC, IgnoreUnknown). */
  args: Record<string, string>;
  /** Pod labels/annotations when known (KubeVirt identity); the agent may look them up itself. */
  pod?: PodRef;
  vm?: VmRef;
  /** CNI_PATH, for delegated IPAM plugins. */
  cniPath: string;
}

export interface DelRequest extends Attachment {
  /** May be empty or already gone: DEL is idempotent. */
  netns?: string;
  conf: NetConf;
  args: Record<string, string>;
  cniPath: string;
}

export type CheckRequest = AddRequest;

export interface GcRequest {
  conf: NetConf;
  validAttachments: Attachment[];
  cniPath: string;
}

export interface EndpointManager {
  add(req: AddRequest): Promise<CniResult>;
  del(req: DelRequest): Promise<void>;
  check(req: CheckRequest): Promise<void>;
  gc(req: GcRequest): Promise<void>;
  /**
   * Throws CniError 50/51 when the network cannot take ADDs. With `cniPath` (CNI_PATH), a delegated
   * IPAM plugin is asked as well (CNI 1.1 configs only).
   */
  status(conf: NetConf, cniPath?: string): Promise<void>;
  /** Repairs state after a crash: removes half-built endpoints and leaked veths and addresses. */
  reconcile(): Promise<void>;
}
