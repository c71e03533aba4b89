// The embedded lookup service: the directory over HTTP on a unix socket, for the lab and for
// single-machine use. Agents in other network namespaces reach it by path.
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { z } from 'zod';
import { DirectoryStore } from '../store.js';
import {
  describeZodError,
  endpointsReport,
  membershipsReport,
  nodeRecord,
  reservationRequest,
  underlayHealthReport,
} from '../schema.js';
import { errorMessage } from '../../base/errors.js';

export const MAX_BODY_BYTES = 8 << 20;

class HttpError extends Error {
  constructor(
    public readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `body is not valid JSON: ${errorMessage(err)}`);
  }
}

function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new HttpError(422, `invalid ${what}: ${describeZodError(r.error)}`);
  return r.data;
}

export class EmbeddedLookupServer {
  private server: Server;
  private watchers = new Set<ServerResponse>();

  constructor(
    readonly store: DirectoryStore,
    private readonly socketPath: string,
  ) {
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: errorMessage(err) }));
      });
    });
  }

  async listen(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true, mode: 0o700 });
    rmSync(this.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => resolve());
    });
  }

  async dispose(): Promise<void> {
    for (const w of this.watchers) w.end();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.socketPath, { force: true });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://lookup');
    const m = /^\/v1\/nodes\/([^/]+)(?:\/(endpoints|memberships|health))?$/.exec(url.pathname);
    if (req.method === 'GET' && url.pathname === '/v1/watch') return this.watch(res);
    if (req.method === 'GET' && url.pathname === '/v1/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.store.underlayHealth()));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/v1/directory') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ version: this.store.currentVersion, directory: this.store.snapshot() }));
      return;
    }
    const pod = /^\/v1\/pods\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && pod) {
      const meta = this.store.pod(decodeURIComponent(pod[1]!), decodeURIComponent(pod[2]!));
      if (!meta) throw new HttpError(404, `no pod ${pod[1]}/${pod[2]}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(meta));
      return;
    }
    const vmi = /^\/v1\/vmis\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && vmi) {
      const status = this.store.vmi(decodeURIComponent(vmi[1]!), decodeURIComponent(vmi[2]!));
      if (!status) throw new HttpError(404, `no VMI ${vmi[1]}/${vmi[2]}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status));
      return;
    }
    const reservation = /^\/v1\/reservations\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (reservation) return this.reservation(req, res, reservation.slice(1).map(decodeURIComponent));
    if (req.method !== 'PUT' || !m) throw new HttpError(404, `no route for ${req.method} ${url.pathname}`);
    const node = decodeURIComponent(m[1]!);
    const body = await readJson(req);
    try {
      switch (m[2]) {
        case undefined: {
          const rec = parse(nodeRecord, body, 'node record');
          if (rec.name !== node)
            throw new HttpError(422, `invalid node record: name: ${rec.name} is not ${node}`);
          this.store.registerNode(rec);
          break;
        }
        case 'endpoints':
          this.store.publishEndpoints(node, parse(endpointsReport, body, 'endpoints report'));
          break;
        case 'memberships':
          this.store.reportMemberships(node, parse(membershipsReport, body, 'memberships report'));
          break;
        case 'health': {
          const report = parse(underlayHealthReport, body, 'underlay health report');
          if (report.node !== node)
            throw new HttpError(422, `invalid underlay health report: node: ${report.node} is not ${node}`);
          this.store.reportUnderlayHealth(report);
          break;
        }
      }
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw new HttpError(422, errorMessage(err));
    }
    res.writeHead(204).end();
  }

  /**
   * GET: a VM's address reservation on a network (404: none). PUT {ips, owner?, replace?}: reserves
   * them unless it has one (DirectoryStore.reserveAddresses); answers with the one that holds.
   */
  private async reservation(req: IncomingMessage, res: ServerResponse, path: string[]): Promise<void> {
    const [namespace, name, network] = path as [string, string, string];
    const vm = { namespace, name };
    let r = this.store.addressReservation(vm, network);
    if (req.method === 'PUT') {
      const body = parse(reservationRequest, await readJson(req), 'reservation');
      r = this.store.reserveAddresses({ network, vm, ips: body.ips }, body);
    } else if (req.method !== 'GET') {
      throw new HttpError(405, `no route for ${req.method} ${req.url}`);
    }
    if (!r)
      throw new HttpError(404, `no address reservation of VM ${namespace}/${name} on network ${network}`);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(r));
  }

  /** Streams the whole directory as one JSON line now and after every change. */
  private watch(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    this.watchers.add(res);
    const unsubscribe = this.store.subscribe((directory, version) => {
      res.write(JSON.stringify({ version, directory }) + '\n');
    });
    res.on('close', () => {
      unsubscribe();
      this.watchers.delete(res);
    });
  }
}
