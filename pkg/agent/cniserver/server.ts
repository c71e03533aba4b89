// The agent's CNI endpoint: HTTP on a unix socket that castnet-cni forwards each invocation to
// (docs/agent-api.md). The socket's directory is private to root; a stale socket is replaced.
import type { Disposable } from '../../base/lifecycle.js';
import { mkdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { CniError, CniErrorCode } from '../../cni/types.js';
import type { EndpointManager } from '../../endpoint/manager.js';
import type { Logger } from '../../log/log.js';
import { CniDispatcher, MAX_STDIN_BYTES } from './dispatch.js';
import { errorMessage } from '../../base/errors.js';

export const API_PATH = '/v1/cni';
/** Answers 200 once the agent serves CNI (it listens only after reconciling): a readiness probe. */
export const HEALTH_PATH = '/v1/healthz';
/** A newer agent on the same node asks this one to give up the node (docs/agent-api.md). */
export const HANDOVER_PATH = '/v1/handover';

export interface CniServerOptions {
  /** Names this agent process in /v1/healthz, so a probe can tell it from a predecessor. */
  instance?: string;
  /**
   * Stops everything but this server (data plane, stats, state) for a successor. Runs with no CNI
   * request in progress; afterwards the server answers every CNI request with "try again later".
   */
  handOver?: () => Promise<void>;
}
/** Room for a maximal stdin after JSON string escaping, plus the environment. */
export const MAX_BODY_BYTES = 8 * MAX_STDIN_BYTES;

export class CniServer implements Disposable {
  private readonly server: Server;
  private readonly dispatcher: CniDispatcher;
  private handedOver = false;

  constructor(
    manager: EndpointManager,
    readonly socketPath: string,
    private readonly log: Logger,
    private readonly o: CniServerOptions = {},
  ) {
    this.dispatcher = new CniDispatcher(manager, log);
    this.server = createServer((req, res) => {
      this.serve(req, res).catch((err: unknown) => {
        log.error('CNI request handling failed', { error: err });
        if (!res.headersSent) reply(res, 500, new CniError(CniErrorCode.IoFailure, String(err)).toJSON());
      });
    });
  }

  /** Listens on the socket path (replacing a stale socket file). */
  async start(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true, mode: 0o700 });
    rmSync(this.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.socketPath, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.log.info('CNI server listening', { socket: this.socketPath });
  }

  /** True once this agent handed the node over: it must not touch the node any more. */
  get handedOverToSuccessor(): boolean {
    return this.handedOver;
  }

  async dispose(): Promise<void> {
    // After a handover the socket path is the successor's: leave it alone.
    if (this.handedOver) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    rmSync(this.socketPath, { force: true });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.handedOver) {
      const err = new CniError(
        CniErrorCode.TryAgainLater,
        'this agent handed the node over to its successor; retry on the new agent',
      );
      return reply(res, 503, err.toJSON());
    }
    if (req.method === 'GET' && req.url === HEALTH_PATH)
      return reply(res, 200, { status: 'ok', ...(this.o.instance ? { instance: this.o.instance } : {}) });
    if (req.method === 'POST' && req.url === HANDOVER_PATH) return this.handOver(res);
    if (req.method !== 'POST' || req.url !== API_PATH) {
      const err = new CniError(
        CniErrorCode.InvalidConfig,
        `no such endpoint: ${req.method} ${req.url} (want POST ${API_PATH})`,
      );
      return reply(res, 404, err.toJSON());
    }
    const text = await readBody(req);
    if (text === undefined) {
      const err = new CniError(
        CniErrorCode.InvalidConfig,
        `request body exceeds the ${MAX_BODY_BYTES}-byte limit`,
      );
      return reply(res, 413, err.toJSON());
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      const err = new CniError(CniErrorCode.DecodeFailure, 'request body is not valid JSON', errorMessage(e));
      return reply(res, 400, err.toJSON());
    }
    const answer = await this.dispatcher.handle(body);
    if (answer.ok) return answer.body === undefined ? reply(res, 204) : reply(res, 200, answer.body);
    reply(res, 400, answer.body);
  }

  /**
   * Stops listening (new connections are refused, so castnet-cni's next request reaches the
   * successor once it listens), waits for CNI requests in progress, stops the rest of the agent,
   * then answers. Every later request, even on an open connection, is refused.
   */
  private async handOver(res: ServerResponse): Promise<void> {
    if (!this.o.handOver) {
      const err = new CniError(CniErrorCode.InvalidConfig, 'this agent cannot hand over (no data plane)');
      return reply(res, 404, err.toJSON());
    }
    const started = process.hrtime.bigint();
    this.log.info('handing the node over to a successor agent');
    this.server.close();
    this.handedOver = true;
    // Nothing else keeps the process up now; it must stay (idle) until terminated: an agent that
    // exited would be restarted by the kubelet and take the node back from its successor.
    setInterval(() => undefined, 2 ** 30);
    await this.dispatcher.drain(() => this.o.handOver!());
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    this.log.info('handed over; idle until terminated', { stoppedInMs: Math.round(ms) });
    res.setHeader('connection', 'close');
    reply(res, 200, { status: 'handed-over', stoppedInMs: ms });
  }
}

/**
 * The request body as text, or undefined when it passes MAX_BODY_BYTES. An oversized body is still
 * read to its end (and dropped): leaving the loop early would destroy the socket before the answer.
 */
async function readBody(req: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk as Buffer);
  }
  return size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks).toString('utf8');
}

function reply(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
