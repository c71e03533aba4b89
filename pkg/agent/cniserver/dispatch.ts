// Turns one forwarded CNI invocation (docs/agent-api.md) into a call on the EndpointManager, and the
// outcome into the CNI answer: a result in the requested version, nothing, or the spec's JSON error.
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { parseEnv, podFromArgs, type CniInvocation } from '../../cni/env.js';
import { parseOrThrow } from '../../cni/errors.js';
import { decodeStdin, errorVersion, parseNetConf, parseValidAttachments } from '../../cni/netconf.js';
import { formatResult } from '../../cni/result.js';
import {
  attachmentKey,
  CniError,
  CniErrorCode,
  CURRENT_VERSION,
  SUPPORTED_VERSIONS,
} from '../../cni/types.js';
import type { EndpointManager, NetConf } from '../../endpoint/manager.js';
import type { Logger } from '../../log/log.js';
import { AttachmentLocks } from './locks.js';
import { errorMessage } from '../../base/errors.js';

/** The largest network configuration accepted, as for the CNI binary's stdin. */
export const MAX_STDIN_BYTES = 1 << 20;

/** Body of POST /v1/cni. */
export const cniRequestSchema = z.object({
  command: z.string(),
  env: z.record(z.string(), z.string()),
  stdin: z.string(),
});
export type CniRequest = z.infer<typeof cniRequestSchema>;

/** What to send back: a JSON body (result or CNI error) or nothing, and whether it is an error. */
export interface CniAnswer {
  ok: boolean;
  body?: unknown;
}

/** Verbs that CNI 1.1 introduced; a config of an older version may not ask for them. */
const SINCE_1_1 = new Set(['STATUS', 'GC']);

export class CniDispatcher {
  private readonly locks = new AttachmentLocks();
  /** Set once the node is handed over: no request may touch it after that. */
  private stopped = false;

  constructor(
    private readonly manager: EndpointManager,
    private readonly log: Logger,
  ) {}

  /** Answers one request; never throws. */
  async handle(body: unknown): Promise<CniAnswer> {
    const started = process.hrtime.bigint();
    let raw: Record<string, unknown> | undefined;
    let inv: CniInvocation | undefined;
    try {
      const req = parseOrThrow(cniRequestSchema, body, 'agent API request', CniErrorCode.DecodeFailure);
      inv = parseEnv({ ...req.env, CNI_COMMAND: req.command });
      if (inv.command === 'VERSION') {
        return { ok: true, body: { cniVersion: CURRENT_VERSION, supportedVersions: SUPPORTED_VERSIONS } };
      }
      if (Buffer.byteLength(req.stdin) > MAX_STDIN_BYTES) {
        throw new CniError(
          CniErrorCode.InvalidConfig,
          `stdin: network configuration exceeds the ${MAX_STDIN_BYTES}-byte limit`,
        );
      }
      raw = decodeStdin(req.stdin);
      const conf = parseNetConf(raw);
      const answer = await this.run(inv, conf, raw);
      this.logDone(inv, started);
      return answer;
    } catch (err) {
      const cniErr = toCniError(err, inv);
      this.logDone(inv, started, cniErr);
      return { ok: false, body: cniErr.toJSON(errorVersion(raw)) };
    }
  }

  private async run(inv: CniInvocation, conf: NetConf, raw: Record<string, unknown>): Promise<CniAnswer> {
    if (SINCE_1_1.has(inv.command) && conf.cniVersion !== '1.1.0') {
      throw new CniError(
        CniErrorCode.IncompatibleVersion,
        `cniVersion: ${inv.command} needs 1.1.0, but the network config says ${conf.cniVersion}`,
      );
    }
    const { containerId, ifname, netns, args, cniPath } = inv;
    const attachment = () => attachmentKey({ containerId, ifname });
    switch (inv.command) {
      case 'ADD': {
        ensureNetnsExists(netns);
        const req = { containerId, ifname, netns, conf, args, pod: podFromArgs(args), cniPath };
        const result = await this.one(attachment(), () => this.manager.add(req));
        return { ok: true, body: formatResult(result, conf.cniVersion) };
      }
      case 'CHECK': {
        ensureNetnsExists(netns);
        const req = { containerId, ifname, netns, conf, args, pod: podFromArgs(args), cniPath };
        await this.one(attachment(), () => this.manager.check(req));
        return { ok: true };
      }
      case 'DEL': {
        const req = { containerId, ifname, netns: netns || undefined, conf, args, cniPath };
        await this.one(attachment(), () => this.manager.del(req));
        return { ok: true };
      }
      case 'GC': {
        const validAttachments = parseValidAttachments(raw);
        await this.all(() => this.manager.gc({ conf, validAttachments, cniPath }));
        return { ok: true };
      }
      case 'STATUS':
        await this.manager.status(conf, cniPath);
        return { ok: true };
      case 'VERSION':
        throw new Error('unreachable: VERSION is answered before the network config is read');
    }
  }

  /**
   * Runs `fn` alone, after the requests in progress, and refuses every request after it: the
   * handover of the node to a successor agent.
   */
  async drain(fn: () => Promise<void>): Promise<void> {
    await this.locks.withAll(async () => {
      this.stopped = true;
      await fn();
    });
  }

  private one<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.withAttachment(key, () => this.unlessStopped(fn));
  }

  private all<T>(fn: () => Promise<T>): Promise<T> {
    return this.locks.withAll(() => this.unlessStopped(fn));
  }

  private unlessStopped<T>(fn: () => Promise<T>): Promise<T> {
    if (this.stopped)
      throw new CniError(
        CniErrorCode.TryAgainLater,
        'the agent handed the node over to its successor; retry',
      );
    return fn();
  }

  private logDone(inv: CniInvocation | undefined, started: bigint, err?: CniError): void {
    const fields = {
      command: inv?.command,
      containerId: inv?.containerId || undefined,
      ifname: inv?.ifname || undefined,
      netns: inv?.netns || undefined,
      durationMs: Number(process.hrtime.bigint() - started) / 1e6,
    };
    if (err) this.log.warn('CNI request failed', { ...fields, code: err.code, error: err.message });
    else this.log.info('CNI request done', fields);
  }
}

/** ADD and CHECK need the pod's netns; a wrong path is the runtime's error, not a wiring failure. */
function ensureNetnsExists(netns: string): void {
  // A stat is microseconds; the async variant would queue behind the libuv thread pool.
  if (!existsSync(netns)) {
    throw new CniError(CniErrorCode.InvalidEnvironment, `CNI_NETNS: ${JSON.stringify(netns)} does not exist`);
  }
}

/** A CniError is passed on as is; anything else becomes a wiring failure with the request's context. */
function toCniError(err: unknown, inv: CniInvocation | undefined): CniError {
  if (err instanceof CniError) return err;
  const what = inv ? `${inv.command} ${attachmentKey(inv)}` : 'request';
  const message = errorMessage(err);
  return new CniError(
    CniErrorCode.WiringFailed,
    `${what} failed: ${message}`,
    err instanceof Error ? err.stack : '',
  );
}
