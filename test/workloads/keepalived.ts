// The real keepalived (VRRP) in a pod (of the lab or of the real cluster: a Where,
// ../harness/where.ts), with the service behind its virtual IP: a socat that answers every TCP
// connection with the instance's name, so a client knows which instance the VIP reached.
// keepalived runs in its own mount namespace (nothing it writes under /run is shared with the host
// or another instance), with its own pid files, only its VRRP subsystem, in the foreground; its
// notify script records the state it last entered (MASTER, BACKUP, FAULT...).
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../../pkg/base/async.js';
import type { Disposable } from '../../pkg/base/lifecycle.js';
import { runWhere, spawnWhere, type Where } from '../harness/where.js';

export interface VrrpOptions {
  /** The higher priority wins the election (both instances start BACKUP). */
  priority: number;
  /** The pod's interface on the network VRRP runs on (eth0 in the lab, net1 on the cluster). */
  iface: string;
  vip: string;
  /** The VIP's prefix length: the network's. */
  prefixLen: number;
  /** The TCP port of the service behind the VIP. */
  echoPort: number;
}

/** keepalived's configuration: state BACKUP, advert_int 1, the VIP on `iface`. */
export function keepalivedConf(name: string, o: VrrpOptions, notify: string): string {
  return `global_defs {
  router_id ${name}
  script_user root
  enable_script_security
}
vrrp_instance VI_1 {
  state BACKUP
  interface ${o.iface}
  virtual_router_id 51
  priority ${o.priority}
  advert_int 1
  virtual_ipaddress {
    ${o.vip}/${o.prefixLen} dev ${o.iface}
  }
  notify ${notify}
}
`;
}

/** A TCP service in the pod that answers every connection on `port` with `name`. */
export function echoService(where: Where, name: string, port: number): ChildProcess {
  return spawnWhere(where, 'socat', [`TCP-LISTEN:${port},fork,reuseaddr`, `SYSTEM:echo ${name}`]);
}

/** One TCP connection from the pod `client` to address:port: the name that answered, if any. */
export async function askName(client: Where, address: string, port: number): Promise<string | undefined> {
  try {
    const { stdout } = await runWhere(
      client,
      'socat',
      ['-T', '2', '-', `TCP:${address}:${port},connect-timeout=1`],
      { input: '', timeoutMs: 5000 },
    );
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Whether `address` is on the pod's interface `iface`. */
export async function holdsAddress(where: Where, iface: string, address: string): Promise<boolean> {
  const { stdout } = await runWhere(where, 'ip', ['-4', '-o', 'addr', 'show', 'dev', iface]);
  return stdout.includes(` ${address}/`);
}

export class Keepalived implements Disposable {
  readonly log: string[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), 'castnet-vrrp-'));
  private keepalived?: ChildProcess;
  private echo?: ChildProcess;

  constructor(
    readonly name: string,
    readonly where: Where,
    readonly o: VrrpOptions,
  ) {}

  start(): void {
    const notify = join(this.dir, 'notify.sh');
    const state = join(this.dir, 'state');
    // keepalived runs it with: TYPE NAME STATE PRIORITY.
    writeFileSync(notify, `#!/bin/sh\necho "$3" > ${state}.tmp && mv ${state}.tmp ${state}\n`);
    chmodSync(notify, 0o700);
    const conf = join(this.dir, 'keepalived.conf');
    writeFileSync(conf, keepalivedConf(this.name, this.o, notify));
    this.keepalived = spawnWhere(this.where, 'unshare', [
      ...['-m', '--propagation', 'private'],
      ...['keepalived', '-n', '-l', '-D', '--vrrp', '-f', conf],
      ...['-p', join(this.dir, 'keepalived.pid'), '-r', join(this.dir, 'vrrp.pid')],
    ]);
    for (const s of [this.keepalived.stdout, this.keepalived.stderr])
      s?.on('data', (c: Buffer) => this.log.push(c.toString()));
    this.echo = echoService(this.where, this.name, this.o.echoPort);
  }

  /** The VRRP state keepalived last reported through its notify script, or NONE. */
  state(): string {
    try {
      return readFileSync(join(this.dir, 'state'), 'utf8').trim();
    } catch {
      return 'NONE';
    }
  }

  holdsVip(): Promise<boolean> {
    return holdsAddress(this.where, this.o.iface, this.o.vip);
  }

  /** keepalived's processes (its parent and VRRP child), from their pid files. */
  private pids(): number[] {
    return ['vrrp.pid', 'keepalived.pid'].flatMap((f) => {
      try {
        return [Number(readFileSync(join(this.dir, f), 'utf8').trim())];
      } catch {
        return [];
      }
    });
  }

  /**
   * Kills the instance as a crash would: stopped first, so neither process can act on the other's
   * death (the VRRP child would resign, sending priority 0), then killed. Its VIP stays on its
   * interface, as after a real crash.
   */
  crash(): void {
    const pids = this.pids();
    for (const sig of ['SIGSTOP', 'SIGKILL'] as const)
      for (const pid of pids) {
        try {
          process.kill(pid, sig);
        } catch {
          // already gone
        }
      }
  }

  async dispose(): Promise<void> {
    this.crash();
    for (const p of [this.keepalived, this.echo]) {
      if (!p || p.exitCode !== null || p.signalCode !== null) continue;
      const gone = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGKILL');
      const done = new AbortController();
      await Promise.race([gone, sleep(5000, done.signal).catch(() => undefined)]);
      done.abort();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
