// A small JSON client for the Kubernetes API: plain objects in and out, so castnet's custom resources,
// Leases and Events are written exactly as the API defines them, plus a watch stream.
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Connection } from './kubeconfig.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    /** A 422 Invalid's details.causes: each names the offending field. */
    readonly causes: ReadonlyArray<{ field?: string; message?: string }> = [],
  ) {
    super(message);
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof ApiError && e.status === 404;
export const isConflict = (e: unknown): boolean => e instanceof ApiError && e.status === 409;

export type PatchType = 'merge' | 'json' | 'apply';
const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface ListResult<T> {
  items: T[];
  metadata: { resourceVersion?: string; continue?: string };
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export class ApiClient {
  private readonly agent: http.Agent;
  private token?: { value: string; at: number };

  constructor(readonly conn: Connection) {
    const tls = conn.server.protocol === 'https:';
    this.agent = tls
      ? new https.Agent({
          keepAlive: true,
          ca: conn.ca,
          cert: conn.cert,
          key: conn.key,
          rejectUnauthorized: !conn.insecureSkipTLSVerify,
        })
      : new http.Agent({ keepAlive: true });
  }

  private bearer(): string | undefined {
    if (!this.conn.tokenFile) return this.conn.token;
    // Projected tokens rotate; re-read at most once a minute.
    if (!this.token || Date.now() - this.token.at > 60_000) {
      this.token = { value: readFileSync(this.conn.tokenFile, 'utf8').trim(), at: Date.now() };
    }
    return this.token.value;
  }

  private open(
    method: string,
    path: string,
    query: Record<string, string>,
    headers: http.OutgoingHttpHeaders,
    timeoutMs: number,
  ): http.ClientRequest {
    const url = new URL(path, this.conn.server);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const token = this.bearer();
    const mod = url.protocol === 'https:' ? https : http;
    return mod.request(url, {
      method,
      agent: this.agent,
      headers: {
        Accept: 'application/json',
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...headers,
      },
      timeout: timeoutMs,
    });
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    opts: { contentType?: string; query?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders = payload
      ? { 'Content-Type': opts.contentType ?? 'application/json', 'Content-Length': payload.length }
      : {};
    const what = `${method} ${path}`;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = this.open(method, path, opts.query ?? {}, headers, opts.timeoutMs ?? 30_000);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', (e) => reject(new Error(`${what} failed: ${e.message}`, { cause: e })));
      req.end(payload);
    });
    const parsed = parseJson(text);
    if (status >= 200 && status < 300) return parsed as T;
    const st = parsed as
      | {
          reason?: string;
          message?: string;
          details?: { causes?: Array<{ field?: string; message?: string }> };
        }
      | undefined;
    throw new ApiError(
      status,
      st?.reason ?? String(status),
      `${what}: ${status} ${st?.reason ?? ''}: ${st?.message ?? text.slice(0, 500)}`,
      Array.isArray(st?.details?.causes) ? st.details.causes : [],
    );
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /** Lists every page of a collection. */
  async list<T>(path: string, query: Record<string, string> = {}): Promise<ListResult<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await this.request<ListResult<T>>('GET', path, undefined, {
        query: { ...query, limit: '500', ...(cont ? { continue: cont } : {}) },
      });
      items.push(...(page.items ?? []));
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion;
    } while (cont);
    return { items, metadata: { resourceVersion: rv } };
  }

  create<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  replace<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  patch<T>(
    path: string,
    body: unknown,
    type: PatchType = 'merge',
    query: Record<string, string> = {},
  ): Promise<T> {
    return this.request<T>('PATCH', path, body, { contentType: PATCH_CONTENT_TYPES[type], query });
  }

  delete(path: string): Promise<unknown> {
    return this.request('DELETE', path);
  }

  /**
   * Streams watch events of a collection from `resourceVersion` until the server ends the watch
   * (resolves) or the connection fails (rejects). `signal` aborts it.
   */
  watch<T>(
    path: string,
    resourceVersion: string,
    onEvent: (e: WatchEvent<T>) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const query = {
      watch: '1',
      resourceVersion,
      allowWatchBookmarks: 'true',
      // Server-side end of each watch, spread so many watchers do not reconnect in lockstep.
      timeoutSeconds: String(240 + Math.floor(Math.random() * 120)),
    };
    return new Promise<void>((resolve, reject) => {
      const req = this.open('GET', path, query, {}, 0);
      const abort = (): void => {
        req.destroy();
        resolve();
      };
      signal?.addEventListener('abort', abort, { once: true });
      req.on('response', (res) => {
        if ((res.statusCode ?? 0) >= 300) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const st = parseJson(Buffer.concat(chunks).toString()) as
              { reason?: string; message?: string } | undefined;
            reject(
              new ApiError(
                res.statusCode ?? 0,
                st?.reason ?? '',
                `watch ${path}: ${res.statusCode} ${st?.message ?? ''}`,
              ),
            );
          });
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            try {
              onEvent(JSON.parse(line) as WatchEvent<T>);
            } catch (err) {
              req.destroy();
              reject(err);
              return;
            }
          }
        });
        res.on('end', () => {
          signal?.removeEventListener('abort', abort);
          resolve();
        });
        res.on('error', (e) => reject(new Error(`watch ${path}: ${e.message}`, { cause: e })));
        res.on('aborted', () => reject(new Error(`watch ${path}: connection lost`)));
      });
      req.on('error', (e) => {
        signal?.removeEventListener('abort', abort);
        if (signal?.aborted) resolve();
        else reject(new Error(`watch ${path} failed: ${e.message}`, { cause: e }));
      });
      req.end();
    });
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** The REST path of a castnet resource collection, or of one object when `name` is given. */
export function resourcePath(
  apiVersion: string,
  plural: string,
  opts: { namespace?: string; name?: string; subresource?: string } = {},
): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = opts.namespace ? `/namespaces/${encodeURIComponent(opts.namespace)}` : '';
  const name = opts.name ? `/${encodeURIComponent(opts.name)}` : '';
  const sub = opts.name && opts.subresource ? `/${opts.subresource}` : '';
  return `${base}${ns}/${plural}${name}${sub}`;
}
