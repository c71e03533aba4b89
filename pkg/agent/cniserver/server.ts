// The agent's CNI endpoint: HTTP on a unix socket that castnet-cni forwards each invocation to
// (docs/agent-api.md). The socket's directory is private to root; a stale socket is replaced.
import { mkdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { CniError, CniErrorCode } from '../../cni/types';
import type { EndpointManager } from '../../endpoint/manager';
import type { Logger } from '../../log/log';
import { CniDispatcher, MAX_STDIN_BYTES } from './dispatch';

export const API_PATH = '/v1/cni';
/** Answers 200 once the agent serves CNI (it listens only after reconciling): a readiness probe. */
export const HEALTH_PATH = '/v1/healthz';
/** Room for a maximal stdin after JSON string escaping, plus the environment. */
export const MAX_BODY_BYTES = 8 * MAX_STDIN_BYTES;

export class CniServer {
  private readonly server: Server;
  private readonly dispatcher: CniDispatcher;

  constructor(
    manager: EndpointManager,
    readonly socketPath: string,
    private readonly log: Logger,
  ) {
    this.dispatcher = new CniDispatcher(manager, log);
    this.server = createServer((req, res) => {
      this.serve(req, res).catch((err: unknown) => {
        log.error('CNI request handling failed', { error: err });
        if (!res.headersSent) reply(res, 500, new CniError(CniErrorCode.IoFailure, String(err)).toJSON());
      });
    });
  }

  async listen(): Promise<void> {
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

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    rmSync(this.socketPath, { force: true });
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET' && req.url === HEALTH_PATH) return reply(res, 200, { status: 'ok' });
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
      const err = new CniError(
        CniErrorCode.DecodeFailure,
        'request body is not valid JSON',
        (e as Error).message,
      );
      return reply(res, 400, err.toJSON());
    }
    const answer = await this.dispatcher.handle(body);
    if (answer.ok) return answer.body === undefined ? reply(res, 204) : reply(res, 200, answer.body);
    reply(res, 400, answer.body);
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
