// CNI spec types (https://github.com/containernetworking/cni/blob/main/SPEC.md), versions 0.4.0 to 1.1.0.

export const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';

/** Well-known error codes from the spec; 100+ are castnet's own. */
export enum CniErrorCode {
  IncompatibleVersion = 1,
  UnsupportedField = 2,
  ContainerUnknown = 3,
  InvalidEnvironment = 4,
  IoFailure = 5,
  DecodeFailure = 6,
  InvalidConfig = 7,
  TryAgainLater = 11,
  PluginNotAvailable = 50,
  PluginNotAvailableDegraded = 51,
  // castnet-specific
  AddressExhausted = 100,
  InterfaceExists = 101,
  InvalidMac = 102,
  WiringFailed = 103,
  DelegateFailed = 104,
  /** A requested MAC or IP is held by another node's endpoint (cluster-wide uniqueness). */
  AddressInUse = 105,
  /** The network's spec.allowedNamespaces does not list the pod's namespace. */
  NamespaceNotAllowed = 110,
}

/** An error that the CNI binary prints as the spec's JSON error and exits non-zero with. */
export class CniError extends Error {
  constructor(
    public readonly code: number,
    msg: string,
    public readonly details = '',
  ) {
    super(msg);
    this.name = 'CniError';
  }

  toJSON(cniVersion: string = CURRENT_VERSION): CniErrorJson {
    return { cniVersion, code: this.code, msg: this.message, details: this.details };
  }
}

export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface CniIpConfig {
  /** CIDR notation: address/prefix. */
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** The CNI_* environment of one invocation, as the runtime set it. */
export interface CniEnv {
  CNI_COMMAND: string;
  CNI_CONTAINERID?: string;
  CNI_NETNS?: string;
  CNI_IFNAME?: string;
  CNI_ARGS?: string;
  CNI_PATH?: string;
}

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
  /** `args.cni.allowedAddressPairs`: canonical addresses beyond its own the endpoint may use. */
  allowedAddresses?: string[];
  prevResult?: CniResult;
  /** The raw stdin object, for delegation to IPAM plugins. */
  raw: Record<string, unknown>;
}

/** One attachment: what CNI identifies by (containerId, ifname). */
export interface Attachment {
  containerId: string;
  ifname: string;
}

/** The one text key of an attachment, for maps, locks and messages: "containerId/ifname". */
export const attachmentKey = (a: Attachment): string => `${a.containerId}/${a.ifname}`;

/** Where the agent serves castnet-cni. In this import-free module, so `castnet agent-ready` (a probe
 * the kubelet runs every few seconds) loads next to nothing. */
export const DEFAULT_AGENT_SOCKET = '/run/castnet/agent.sock';

/** The `type` a CNI configuration names castnet by, and the binary's installed name. */
export const PLUGIN_TYPE = 'castnet';
