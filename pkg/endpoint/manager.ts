// The contract between the agent's CNI server (pkg/agent/cniserver) and endpoint wiring (pkg/endpoint).
import type { Attachment, CniResult, NetConf } from '../cni/types.js';
import type { PodRef, VmRef } from '../lookup/port.js';

// The validated configuration and the attachment key are CNI's own; re-exported for the wiring.
export type { Attachment, NetConf };

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
  /**
   * Awaited with the addresses castnet IPAM gave the endpoint (address/prefix), once they are
   * recorded and before anything is wired: the agent reserves a VM's addresses here. A rejection
   * fails the ADD, which is rolled back.
   */
  claimAddresses?: (ips: string[]) => Promise<void>;
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
