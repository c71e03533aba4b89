// One pkg/lab Lab for a test file or describe block. useLab() registers the beforeAll that starts it
// and the afterAll that always disposes it, with whatever the tests handed to own() first, even when
// the start or a test failed. The lab exists only once beforeAll ran, so tests reach it through
// accessors. jest runs hooks in the order they are declared (afterAll too), so a beforeAll the lab
// needs first (a cluster for `kubeconfig`) goes before useLab and its afterAll after it; work in
// the lab (joins, applications in pods) goes in a beforeAll after useLab, releasing through own().
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { DisposableStore, toDisposable, type Disposable } from '../../pkg/base/lifecycle.js';
import { Lab, type LabOptions } from '../../pkg/lab/runner.js';
import { parseLabFile, type LabFile } from '../../pkg/lab/scenario.js';
import { stop } from '../../pkg/sys/exec.js';
import { repoRoot } from './repo.js';

export interface UseLabOptions extends Omit<Partial<LabOptions>, 'kubeconfig'> {
  /** The cluster serving as lookup service; a function when an earlier beforeAll makes it. */
  kubeconfig?: string | (() => string);
  /** beforeAll's timeout; default 120 s. */
  startTimeoutMs?: number;
  /** afterAll's timeout; default 60 s. */
  stopTimeoutMs?: number;
}

export type PodInfo = ReturnType<Lab['podInfo']>;

export interface LabFixture {
  /** The lab file, parsed. */
  readonly file: LabFile;
  /** The started lab. Throws before useLab's beforeAll ran, or when the start failed. */
  lab(): Lab;
  /** lab().podInfo(name): a pod's namespace, node, network, addresses and endpoint ID. */
  pod(name: string): PodInfo;
  /**
   * Releases `item` in afterAll, before the lab is disposed, last owned first: a process is
   * stopped (SIGTERM, then SIGKILL), anything else disposed.
   */
  own<T extends Disposable | ChildProcess>(item: T): T;
}

/**
 * A lab from `file` (YAML text or a parsed LabFile) for the tests of the enclosing describe block,
 * with bin/castnet and bin/castnet-cni of this checkout unless `opts` says otherwise.
 */
export function useLab(file: string | LabFile, opts: UseLabOptions = {}): LabFixture {
  const parsed = typeof file === 'string' ? parseLabFile(file) : file;
  const { kubeconfig, startTimeoutMs = 120_000, stopTimeoutMs = 60_000, ...labOptions } = opts;
  const owned = new DisposableStore();
  let started: Lab | undefined;

  beforeAll(async () => {
    const lab = owned.add(
      new Lab(parsed, {
        castnetBin: path.join(repoRoot, 'bin/castnet'),
        cniBin: path.join(repoRoot, 'bin/castnet-cni'),
        ...labOptions,
        kubeconfig: typeof kubeconfig === 'function' ? kubeconfig() : kubeconfig,
      }),
    );
    await lab.start();
    started = lab;
  }, startTimeoutMs);

  afterAll(() => owned.dispose(), stopTimeoutMs);

  const lab = (): Lab => {
    if (!started)
      throw new Error('the lab is not running: useLab’s beforeAll has not run, or the start failed');
    return started;
  };
  return {
    file: parsed,
    lab,
    pod: (name) => lab().podInfo(name),
    own: (item) => {
      owned.add('dispose' in item ? item : toDisposable(() => stop(item)));
      return item;
    },
  };
}
