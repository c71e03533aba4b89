// LookupService over the embedded server's unix socket. It remembers what this node last published
// and re-sends it whenever the watch reconnects, so a restarted lookup service loses nothing.
import { request } from 'node:http';
import type {
  AddressReservation,
  Directory,
  EndpointRecord,
  LookupService,
  MembershipRecord,
  NodeRecord,
  PodMeta,
  UnderlayHealthReport,
  VmiPods,
  VmOwner,
  VmRef,
} from '../port.js';

const RECONNECT_MS = 200;

/** GET (or PUT `body` to) `path` of the embedded lookup service: the JSON answer, or undefined for 404. */
function getJson<T>(socketPath: string, path: string, body?: unknown): Promise<T | undefined> {
  const method = body === undefined ? 'GET' : 'PUT';
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers = data ? { 'content-type': 'application/json', 'content-length': data.length } : {};
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 404 && !data) return resolve(undefined);
        if (res.statusCode !== 200)
          return reject(new Error(`lookup service: ${method} ${path}: ${res.statusCode} ${text}`));
        resolve(JSON.parse(text) as T);
      });
    });
    req.on('error', (err) =>
      reject(new Error(`lookup service unreachable at ${socketPath}: ${err.message}`)),
    );
    req.end(data);
  });
}

const reservationPath = (vm: VmRef, network: string): string =>
  `/v1/reservations/${[vm.namespace, vm.name, network].map(encodeURIComponent).join('/')}`;

/** Every node's underlay health report the embedded lookup service at `socketPath` holds. */
export async function readUnderlayHealth(socketPath: string): Promise<UnderlayHealthReport[]> {
  return (await getJson<UnderlayHealthReport[]>(socketPath, '/v1/health')) ?? [];
}

export class EmbeddedLookupClient implements LookupService {
  private listeners = new Set<(d: Directory) => void>();
  private last: Directory | undefined;
  private closed = false;
  private abortWatch: (() => void) | undefined;
  private published = new Map<string, unknown>();

  constructor(private readonly socketPath: string) {
    this.connectWatch();
  }

  registerNode(node: NodeRecord): Promise<void> {
    return this.put(`/v1/nodes/${encodeURIComponent(node.name)}`, node);
  }

  publishEndpoints(node: string, endpoints: EndpointRecord[]): Promise<void> {
    return this.put(`/v1/nodes/${encodeURIComponent(node)}/endpoints`, endpoints);
  }

  reportMemberships(node: string, memberships: MembershipRecord[]): Promise<void> {
    return this.put(`/v1/nodes/${encodeURIComponent(node)}/memberships`, memberships);
  }

  reportUnderlayHealth(report: UnderlayHealthReport): Promise<void> {
    return this.put(`/v1/nodes/${encodeURIComponent(report.node)}/health`, report);
  }

  podMetadata(namespace: string, name: string): Promise<PodMeta | undefined> {
    const path = `/v1/pods/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
    return getJson<PodMeta>(this.socketPath, path);
  }

  vmiPods(namespace: string, name: string): Promise<VmiPods | undefined> {
    const path = `/v1/vmis/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
    return getJson<VmiPods>(this.socketPath, path);
  }

  addressReservation(vm: VmRef, network: string): Promise<AddressReservation | undefined> {
    return getJson<AddressReservation>(this.socketPath, reservationPath(vm, network));
  }

  async reserveAddresses(
    r: AddressReservation,
    opts: { owner?: VmOwner; replace?: boolean } = {},
  ): Promise<AddressReservation> {
    const body = { ips: r.ips, ...opts };
    const held = await getJson<AddressReservation>(this.socketPath, reservationPath(r.vm, r.network), body);
    return held!;
  }

  subscribe(onChange: (d: Directory) => void): () => void {
    this.listeners.add(onChange);
    if (this.last) onChange(this.last);
    return () => this.listeners.delete(onChange);
  }

  async dispose(): Promise<void> {
    this.closed = true;
    this.abortWatch?.();
  }

  private put(path: string, body: unknown): Promise<void> {
    this.published.set(path, body);
    return this.send(path, body);
  }

  private send(path: string, body: unknown): Promise<void> {
    const data = Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path,
          method: 'PUT',
          headers: { 'content-type': 'application/json', 'content-length': data.length },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if (res.statusCode === 204) return resolve();
            const text = Buffer.concat(chunks).toString('utf8');
            let msg = text;
            try {
              msg = (JSON.parse(text) as { error: string }).error;
            } catch {
              /* keep the raw text */
            }
            reject(new Error(`lookup service refused PUT ${path} (${res.statusCode}): ${msg}`));
          });
        },
      );
      req.on('error', (err) =>
        reject(new Error(`lookup service unreachable at ${this.socketPath}: ${err.message}`)),
      );
      req.end(data);
    });
  }

  private connectWatch(): void {
    if (this.closed) return;
    let buffered = '';
    let retried = false;
    const retry = () => {
      if (retried || this.closed) return;
      retried = true;
      setTimeout(() => this.connectWatch(), RECONNECT_MS).unref();
    };
    const req = request({ socketPath: this.socketPath, path: '/v1/watch', method: 'GET' }, (res) => {
      // Re-assert our state: the server may have restarted and forgotten it.
      for (const [path, body] of this.published) this.send(path, body).catch(() => undefined);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          this.last = (JSON.parse(line) as { directory: Directory }).directory;
          for (const fn of this.listeners) fn(this.last);
        }
      });
      res.on('end', retry);
      res.on('error', retry);
    });
    req.on('error', retry);
    req.end();
    this.abortWatch = () => req.destroy();
  }
}
