// Where the apiserver is and how to authenticate: from a kubeconfig file or from inside a pod.
// castnet reads only what its components use (server, CA, client certificate, bearer token); exec and
// auth-provider plugins are not supported and say so. (@kubernetes/client-node 1.x is ESM-only and
// cannot be loaded by this CommonJS code under jest, hence this small loader.)
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';

export interface Connection {
  server: URL;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  /** Re-read on use: projected service-account tokens rotate. */
  tokenFile?: string;
  insecureSkipTLSVerify?: boolean;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: Array<{ name: string } & { context?: { cluster?: string; user?: string } }>;
  clusters?: Array<
    { name: string } & {
      cluster?: {
        server?: string;
        'certificate-authority'?: string;
        'certificate-authority-data'?: string;
        'insecure-skip-tls-verify'?: boolean;
      };
    }
  >;
  users?: Array<
    { name: string } & {
      user?: {
        'client-certificate'?: string;
        'client-certificate-data'?: string;
        'client-key'?: string;
        'client-key-data'?: string;
        token?: string;
        tokenFile?: string;
        exec?: unknown;
        'auth-provider'?: unknown;
      };
    }
  >;
}

/** The connection of a kubeconfig file's current context. */
export function connectionFromKubeconfig(file: string): Connection {
  const doc = parse(readFileSync(file, 'utf8')) as KubeconfigFile;
  const where = `kubeconfig ${file}`;
  const ctxName = doc['current-context'];
  if (!ctxName) throw new Error(`${where}: no current-context`);
  const ctx = doc.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx) throw new Error(`${where}: context "${ctxName}" not found`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster?.server) throw new Error(`${where}: cluster "${ctx.cluster}" has no server`);
  const user = doc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  if (user.exec || user['auth-provider']) {
    throw new Error(
      `${where}: user "${ctx.user}" uses an exec or auth-provider plugin, which castnet does not support`,
    );
  }
  const rel = (p: string): string => path.resolve(path.dirname(file), p);
  const data = (inline: string | undefined, p: string | undefined): Buffer | undefined =>
    inline ? Buffer.from(inline, 'base64') : p ? readFileSync(rel(p)) : undefined;
  return {
    server: new URL(cluster.server),
    ca: data(cluster['certificate-authority-data'], cluster['certificate-authority']),
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'],
    cert: data(user['client-certificate-data'], user['client-certificate']),
    key: data(user['client-key-data'], user['client-key']),
    token: user.token,
    tokenFile: user.tokenFile ? rel(user.tokenFile) : undefined,
  };
}

/** The pod's own service account, as every in-cluster client finds it. */
export function inClusterConnection(): Connection {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new Error('not in a cluster: KUBERNETES_SERVICE_HOST is not set');
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    server: new URL(`https://${hostPart}:${port}`),
    ca: readFileSync(path.join(SA_DIR, 'ca.crt')),
    tokenFile: path.join(SA_DIR, 'token'),
  };
}

/** `file`, else $KUBECONFIG (its first entry), else ~/.kube/config, else the in-cluster service account. */
export function loadConnection(file?: string): Connection {
  const candidate = file ?? process.env.KUBECONFIG?.split(path.delimiter).find(Boolean);
  if (candidate) return connectionFromKubeconfig(candidate);
  const home = path.join(homedir(), '.kube', 'config');
  if (existsSync(home)) return connectionFromKubeconfig(home);
  return inClusterConnection();
}
