// Where the apiserver is and how to authenticate, as @kubernetes/client-node reads it: a kubeconfig
// file (client certificates, bearer tokens, exec credential plugins, auth providers) or the pod's own
// service account. castnet adds two things. Errors say which kubeconfig and which user failed, and
// why: client-node reports a failing exec plugin with its bare stderr, or a TypeError. And requests
// share kept-alive connections: client-node gives each request a new agent, so a new TLS handshake
// (docs/api.md, "Kubernetes client", has the measurement).
import { existsSync } from 'node:fs';
import https from 'node:https';
import { homedir } from 'node:os';
import path from 'node:path';
import { KubeConfig, type RequestContext, type User } from '@kubernetes/client-node';
import { errorMessage } from '../base/errors.js';

/** What decides whether two requests may share a TLS connection. */
const TLS_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

const sameTls = (a: https.AgentOptions, b: https.AgentOptions): boolean =>
  TLS_OPTIONS.every((k) => {
    const x: unknown = a[k];
    const y: unknown = b[k];
    return Buffer.isBuffer(x) && Buffer.isBuffer(y) ? x.equals(y) : x === y;
  });

/**
 * A KubeConfig whose credential failures name the kubeconfig, the user and the cause, and whose API
 * calls reuse connections.
 */
class CastnetKubeConfig extends KubeConfig {
  /** The keep-alive agent of the API calls (its options are the TLS options it was made with). */
  private shared?: https.Agent;

  constructor(readonly source: string) {
    super();
  }

  // API calls authenticate here...
  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    try {
      await super.applySecurityAuthentication(context);
    } catch (err) {
      throw credentialError(this.source, this.getCurrentUser(), err);
    }
    const agent = context.getAgent();
    // An HTTPS agent (a proxy's is not one): one kept-alive agent serves every call with the same
    // TLS options; new ones (an exec plugin's rotated client certificate) get a new agent.
    if (agent instanceof https.Agent) {
      if (!this.shared || !sameTls(this.shared.options, agent.options)) {
        this.shared = new https.Agent({ ...agent.options, keepAlive: true });
      }
      context.setAgent(this.shared);
    }
  }

  // ...and watches (through applyToFetchOptions) here.
  override async applyToHTTPSOptions(opts: https.RequestOptions): Promise<void> {
    try {
      await super.applyToHTTPSOptions(opts);
    } catch (err) {
      throw credentialError(this.source, this.getCurrentUser(), err);
    }
  }
}

function credentialError(source: string, user: User | null, err: unknown): Error {
  const who = `${source}: user "${user?.name ?? ''}"`;
  const exec = user?.exec as { command?: string } | undefined;
  if (exec) {
    // client-node rejects with the plugin's stderr (empty if it printed none), a spawn error, a JSON
    // syntax error, or a TypeError when the output has no `status`.
    const why =
      err instanceof TypeError || err instanceof SyntaxError
        ? `it did not print an ExecCredential with a status (${err.message})`
        : errorMessage(err).trim() || 'it exited with an error and printed nothing on stderr';
    return new Error(`${who}: exec credential plugin "${exec.command ?? ''}" failed: ${why}`, { cause: err });
  }
  return new Error(`${who}: cannot load the credentials: ${errorMessage(err)}`, { cause: err });
}

/**
 * The kubeconfig: `file`, else $KUBECONFIG (its files merged, as kubectl does), else ~/.kube/config,
 * else the pod's service account. Throws when none exists or the current context names no server.
 */
export function loadKubeConfig(file?: string): KubeConfig {
  const home = path.join(homedir(), '.kube', 'config');
  const source = file
    ? `kubeconfig ${file}`
    : process.env.KUBECONFIG
      ? `kubeconfig $KUBECONFIG (${process.env.KUBECONFIG})`
      : existsSync(home)
        ? `kubeconfig ${home}`
        : 'in-cluster config';
  const kc = new CastnetKubeConfig(source);
  try {
    if (file) kc.loadFromFile(file);
    else if (source !== 'in-cluster config') kc.loadFromDefault();
    else if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new Error(
        'none found: pass --kubeconfig, set KUBECONFIG or write ~/.kube/config, or run in a pod (KUBERNETES_SERVICE_HOST/PORT are not set)',
      );
    } else kc.loadFromCluster();
  } catch (err) {
    throw new Error(`${source}: ${errorMessage(err)}`, { cause: err });
  }
  const context = kc.getCurrentContext();
  if (!context) throw new Error(`${source}: no current-context`);
  if (!kc.getContextObject(context)) throw new Error(`${source}: context "${context}" not found`);
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new Error(`${source}: context "${context}" names no cluster with a server`);
  return kc;
}

/**
 * Obtains the current user's credentials once (running its exec plugin, reading its files), so a
 * component fails at start with the reason rather than retrying requests that cannot authenticate.
 */
export async function checkCredentials(kc: KubeConfig): Promise<void> {
  await kc.applyToFetchOptions({});
}

/** The apiserver's URL in the current context. */
export function serverOf(kc: KubeConfig): URL {
  return new URL(kc.getCurrentCluster()!.server);
}
