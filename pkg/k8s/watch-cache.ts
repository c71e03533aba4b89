// A cache of one collection kept by @kubernetes/client-node's ListWatch: it lists, then watches from
// the list's resourceVersion; a watch that ends resumes from the last version seen, and "410 Gone"
// (that version was compacted away) re-lists, ListWatch reporting as deletions what vanished
// meanwhile. This thin layer adds what castnet's components need and ListWatch leaves to its caller
// (docs/api.md, "Kubernetes client"):
// - it restarts after an error, with backoff: ListWatch stops at the first error that is not a 410;
// - it lists every page, and trims objects before the cache keeps them (what an agent caches of a
//   thousand nodes' reports, or a controller of every pod, is most of its memory);
// - it asks for bookmarks and spreads the watches' server-side timeouts, so resuming stays cheap and
//   thousands of agents do not reconnect in lockstep;
// - an update comes with the object it replaces, and start() resolves once a complete list is cached.
import {
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Disposable } from '../base/lifecycle.js';
import { describeApiError } from './api-error.js';

/** The paging and selector parameters of one list request. */
export interface ListPage {
  limit: number;
  _continue?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface WatchCacheOptions<T extends KubernetesObject> {
  /** What is cached, for errors: e.g. "MulticastGroups" or "pods on node-1". */
  what: string;
  /** The REST path of the collection, which is watched. */
  path: string;
  /** Lists one page, passing `page` to the typed API's list call. */
  listPage: (page: ListPage) => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  /** Objects per list request (default 500). */
  pageSize?: number;
  /** Strips what the cache need not keep; mutates in place. */
  trim?: (obj: T) => void;
  /** An object was added or changed (`previous` is the cached version it replaces). */
  onUpsert?: (obj: T, previous: T | undefined) => void;
  onDelete?: (obj: T) => void;
  /** A complete list was applied (after its onUpsert and onDelete calls). */
  onRelisted?: () => void;
  /** A list or watch failed; the cache retries after a backoff. */
  onError?: (err: Error) => void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * The continue token of a list page. client-node deserializes typed lists (pods, nodes) into
 * V1ListMeta, which renames it `_continue`; a custom resource list is the apiserver's JSON, `continue`.
 */
function continueOf(page: KubernetesListObject<KubernetesObject>): string | undefined {
  const meta: { _continue?: string; continue?: string } | undefined = page.metadata;
  return meta?._continue || meta?.continue || undefined;
}

/** Lists every page of a collection (`pageSize` objects each, default 500) into one list. */
export async function listAllPages<T extends KubernetesObject>(
  listPage: (page: ListPage) => Promise<KubernetesListObject<T>>,
  opts: { pageSize?: number; labelSelector?: string; fieldSelector?: string } = {},
): Promise<KubernetesListObject<T>> {
  const items: T[] = [];
  let page: KubernetesListObject<T> | undefined;
  let token: string | undefined;
  do {
    page = await listPage({
      limit: opts.pageSize ?? 500,
      ...(token ? { _continue: token } : {}),
      ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}),
      ...(opts.fieldSelector ? { fieldSelector: opts.fieldSelector } : {}),
    });
    items.push(...page.items);
    token = continueOf(page);
  } while (token);
  // All pages are one snapshot: the last one's resourceVersion is the list's.
  return { ...page, items };
}

/**
 * client-node's Watch, with hooks before it connects and on each event it receives, and ended by
 * `stopped`: ListWatch.stop() aborts only a watch whose response has arrived, so one still
 * connecting when the cache is disposed would stay open until its server-side timeout.
 */
class HookedWatch extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly stopped: AbortSignal,
    private readonly hooks: {
      /** Extra query parameters for a watch that is about to connect. */
      connecting(): Record<string, string | number | boolean>;
      event(phase: string, obj: KubernetesObject, deliver: () => void): void;
    },
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, obj: KubernetesObject, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.stopped.aborted) {
      done(null);
      return new AbortController();
    }
    let ended = false;
    let abort = (): void => undefined;
    const controller = await super.watch(
      path,
      { ...query, ...this.hooks.connecting() },
      (phase, obj: KubernetesObject, watchObj) =>
        this.hooks.event(phase, obj, () => callback(phase, obj, watchObj)),
      (err) => {
        ended = true;
        this.stopped.removeEventListener('abort', abort);
        done(err);
      },
    );
    if (!ended) {
      abort = () => controller.abort();
      if (this.stopped.aborted) abort();
      else this.stopped.addEventListener('abort', abort, { once: true });
    }
    return controller;
  }
}

/** What an owner of watch caches of several kinds does with all of them. */
export type AnyWatchCache = Pick<WatchCache<KubernetesObject>, 'start' | 'dispose' | 'restarts' | 'relists'>;

export class WatchCache<T extends KubernetesObject> implements Disposable {
  private listWatch?: ListWatch<T>;
  private readonly stopped = new AbortController();
  private backoffMs: number;
  private retry?: NodeJS.Timeout;
  /** The cached version of the object whose event is being applied. */
  private replaced: T | undefined;
  /** What the cache held before the list being applied, by namespace/name. */
  private beforeList: Map<string, T> | undefined;
  private resolveSynced!: () => void;
  private readonly synced = new Promise<void>((r) => (this.resolveSynced = r));
  /** Times the watch had to be re-established after an error. */
  restarts = 0;
  /** Complete lists (the first one, and each re-list after a 410). */
  relists = 0;

  constructor(
    private readonly kc: KubeConfig,
    private readonly opts: WatchCacheOptions<T>,
  ) {
    this.backoffMs = opts.minBackoffMs ?? 250;
  }

  /** Starts listing and watching; resolves once the cache holds a complete list. */
  async start(): Promise<void> {
    const { opts } = this;
    const watch = new HookedWatch(this.kc, this.stopped.signal, {
      connecting: () => {
        if (this.beforeList) {
          // ListWatch connects right after applying a list.
          this.beforeList = undefined;
          this.relists++;
          this.opts.onRelisted?.();
          this.resolveSynced();
        }
        // A server-side end for each watch, spread so that many watchers do not reconnect at once.
        return { allowWatchBookmarks: true, timeoutSeconds: 240 + Math.floor(Math.random() * 120) };
      },
      event: (phase, obj, deliver) => this.event(phase, obj as T, deliver),
    });
    const lw = new ListWatch<T>(
      opts.path,
      watch,
      () => this.listAll(),
      false,
      opts.labelSelector,
      opts.fieldSelector,
    );
    this.listWatch = lw;
    lw.on('add', (obj) => this.handling('addition', obj, () => opts.onUpsert?.(obj, undefined)));
    lw.on('update', (obj) => {
      const previous = this.replaced ?? this.beforeList?.get(keyOf(obj));
      this.handling('update', obj, () => opts.onUpsert?.(obj, previous));
    });
    lw.on('delete', (obj) => this.handling('deletion', obj, () => opts.onDelete?.(obj)));
    lw.on('error', (err) => this.failed(err));
    this.run();
    await this.synced;
  }

  private async listAll(): Promise<KubernetesListObject<T>> {
    const list = await listAllPages(this.opts.listPage, this.opts);
    for (const o of list.items) this.opts.trim?.(o);
    this.backoffMs = this.opts.minBackoffMs ?? 250;
    this.beforeList = new Map(this.list().map((o) => [keyOf(o), o]));
    return list;
  }

  private event(phase: string, obj: T, deliver: () => void): void {
    this.backoffMs = this.opts.minBackoffMs ?? 250;
    if (phase === 'ERROR') {
      // The apiserver ends the watch after an error event; ListWatch re-lists after a 410.
      this.restarts++;
      const status = obj as { code?: number; message?: string };
      if (status.code !== 410) {
        this.opts.onError?.(new Error(`watch ${this.opts.what}: ${status.code} ${status.message ?? ''}`));
      }
      deliver();
      return;
    }
    if (phase === 'ADDED' || phase === 'MODIFIED') {
      this.handling('trimming', obj, () => this.opts.trim?.(obj));
      this.replaced = this.get(obj.metadata?.name ?? '', obj.metadata?.namespace);
    }
    deliver();
    this.replaced = undefined;
  }

  /**
   * Runs a handler: its error goes to onError, since client-node would drop it (as a parse error of
   * the watch stream) or leave it an unhandled rejection (after a re-list).
   */
  private handling(what: string, obj: T, handler: () => void): void {
    try {
      handler();
    } catch (err) {
      const name = `${obj.metadata?.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata?.name ?? ''}`;
      this.opts.onError?.(describeApiError(`handling the ${what} of ${name} in ${this.opts.what}`, err));
    }
  }

  private failed(err: unknown): void {
    if (this.stopped.signal.aborted) return;
    this.restarts++;
    this.beforeList = undefined;
    this.opts.onError?.(describeApiError(`list and watch ${this.opts.what}`, err));
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? 5_000);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.run();
    }, delay);
  }

  /** (Re)starts ListWatch; a list's handler that throws counts as a failed list. */
  private run(): void {
    if (!this.stopped.signal.aborted) this.listWatch?.start().catch((err: unknown) => this.failed(err));
  }

  list(): readonly T[] {
    return this.listWatch?.list() ?? [];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.listWatch?.get(name, namespace);
  }

  dispose(): void {
    if (this.stopped.signal.aborted) return;
    // First, so that the aborted watch's error is not taken for a failure to retry.
    this.stopped.abort();
    if (this.retry) clearTimeout(this.retry);
    void this.listWatch?.stop();
  }
}

const keyOf = (o: KubernetesObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
