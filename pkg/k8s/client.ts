// A small JSON client for the Kubernetes API: plain objects in and out, so castnet's custom resources,
// Leases and Events are written exactly as the API defines them (no generated-model serialization).
// Authentication and TLS come from @kubernetes/client-node's KubeConfig.
import * as https from 'node:https';
import * as http from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
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

/** Loads a kubeconfig from a file, or the default chain (KUBECONFIG, ~/.kube/config, in-cluster). */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error('kubeconfig has no current cluster');
  return kc;
}

export class ApiClient {
  private readonly server: URL;

  constructor(readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    opts: { contentType?: string; query?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<T> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    const reqOpts: https.RequestOptions = {
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port,
      path: `${url.pathname}${url.search}`,
      headers: { Accept: 'application/json' },
      timeout: opts.timeoutMs ?? 30_000,
    };
    await this.kc.applyToHTTPSOptions(reqOpts);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      reqOpts.headers = {
        ...reqOpts.headers,
        'Content-Type': opts.contentType ?? 'application/json',
        'Content-Length': payload.length,
      };
    }
    const what = `${method} ${url.pathname}`;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = (url.protocol === 'https:' ? https : http).request(reqOpts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', (e) => reject(new Error(`${what} failed: ${e.message}`)));
      req.end(payload);
    });
    const parsed = parseJson(text);
    if (status >= 200 && status < 300) return parsed as T;
    const st = parsed as { reason?: string; message?: string } | undefined;
    throw new ApiError(
      status,
      st?.reason ?? String(status),
      `${what}: ${status} ${st?.reason ?? ''}: ${st?.message ?? text.slice(0, 500)}`,
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
