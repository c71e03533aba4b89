// avahi-daemon (Debian's avahi-daemon, avahi-utils) in a pod (of the lab or of the real cluster: a
// Where, ../harness/where.ts), as a host runs it but private to the pod, so several run on one machine:
// - its own D-Bus system bus: avahi-browse and avahi-resolve talk to the daemon only over D-Bus, so
//   each pod gets a dbus-daemon of its own, on a socket in the pod's directory, found by
//   DBUS_SYSTEM_BUS_ADDRESS (libdbus reads it) by the daemon and by the tools;
// - its own mount namespace (unshare): /etc/avahi/services, which avahi-daemon watches with inotify
//   and cannot be told to look elsewhere, is the pod's directory; /run is a tmpfs, so its pid file
//   and socket in /run/avahi-daemon are the pod's own;
// - its own configuration (-f): the pod's host name, its one interface (eth0 in the lab, net1 on
//   the cluster), IPv4.
// It runs as root and unchrooted (--no-drop-root --no-chroot): the private bus and directories
// belong to root, and a chroot to /etc/avahi would hide the bus socket.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorMessage } from '../../pkg/base/errors.js';
import type { Disposable } from '../../pkg/base/lifecycle.js';
import { PodProcess } from '../harness/pod-process.js';
import { runWhere, type Where } from '../harness/where.js';
import { waitFor } from '../../pkg/base/async.js';

export interface Service {
  name: string;
  /** DNS-SD type, e.g. `_castnet-probe._tcp`. */
  type: string;
  port: number;
  txt: string[];
}

/** A service as avahi-browse resolved it. */
export interface Resolved {
  name: string;
  type: string;
  host: string;
  address: string;
  port: number;
  txt: string[];
}

/**
 * A resolved service from one line of `avahi-browse -p -r` (`=;eth0;IPv4;name;type;domain;host;
 * address;port;"txt" "txt"`), or undefined for any other line (`+` found, `-` removed, errors).
 * avahi-browse escapes a name's special characters as `\DDD` (decimal).
 */
export function parseResolvedLine(line: string): Resolved | undefined {
  const f = line.split(';');
  if (f[0] !== '=' || f.length < 10) return undefined;
  const unescape = (s: string) => s.replace(/\\(\d{3})/g, (_, d: string) => String.fromCharCode(Number(d)));
  const txt = f.slice(9).join(';');
  return {
    name: unescape(f[3]!),
    type: f[4]!,
    host: f[6]!,
    address: f[7]!,
    port: Number(f[8]),
    txt: [...txt.matchAll(/"([^"]*)"/g)].map((m) => m[1]!).sort(),
  };
}

/** What a browser resolves `s` to when `host` (`name.local`) at `address` publishes it. */
export const resolvedAs = (s: Service, host: string, address: string): Resolved => ({
  name: s.name,
  type: s.type,
  host,
  address,
  port: s.port,
  txt: [...s.txt].sort(),
});

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** An avahi static service file (avahi.service(5)). */
export function serviceFile(s: Service): string {
  const txt = s.txt.map((t) => `    <txt-record>${xmlEscape(t)}</txt-record>\n`).join('');
  return `<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<service-group>
  <name>${xmlEscape(s.name)}</name>
  <service>
    <type>${xmlEscape(s.type)}</type>
    <port>${s.port}</port>
${txt}  </service>
</service-group>
`;
}

function busConfig(socket: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`;
}

function daemonConfig(hostName: string, iface: string): string {
  return `[server]
host-name=${hostName}
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=${iface}
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
# The pods' networks are IPv4: no AAAA for the interface's link-local address either (avahi's default
# publishes it over IPv4 mDNS, and resolvers may answer with it).
publish-aaaa-on-ipv4=no
publish-hinfo=no
publish-workstation=no
`;
}

export class AvahiPod implements Disposable {
  private dir?: string;
  private bus?: PodProcess;
  private avahi?: PodProcess;

  /** `where` is the pod; `hostName` the name its daemon starts with; `iface` the one it uses. */
  constructor(
    readonly pod: string,
    private readonly where: Where,
    readonly hostName: string,
    readonly iface = 'eth0',
  ) {}

  private get started(): { dir: string; daemon: PodProcess } {
    if (!this.dir || !this.avahi) throw new Error(`avahi-daemon of ${this.pod} is not started`);
    return { dir: this.dir, daemon: this.avahi };
  }

  /** The pod's private system bus (set before the daemon starts). */
  private get busAddress(): string {
    if (!this.dir) throw new Error(`the D-Bus bus of ${this.pod} is not started`);
    return `unix:path=${join(this.dir, 'bus')}`;
  }

  private get env(): NodeJS.ProcessEnv {
    return { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: this.busAddress };
  }

  /** The daemon, whose log (stderr) says which host name it holds and what it published. */
  get daemon(): PodProcess {
    return this.started.daemon;
  }

  /** Starts the pod's bus and daemon; resolves with the host name the daemon settled on. */
  async start(): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), `castnet-avahi-${this.pod}-`));
    this.dir = dir;
    const services = join(dir, 'services');
    mkdirSync(services);
    writeFileSync(join(dir, 'bus.conf'), busConfig(join(dir, 'bus')));
    writeFileSync(join(dir, 'avahi-daemon.conf'), daemonConfig(this.hostName, this.iface));

    this.bus = new PodProcess(`dbus-daemon of ${this.pod}`, this.where, 'dbus-daemon', [
      `--config-file=${join(dir, 'bus.conf')}`,
      '--nofork',
      '--print-address',
    ]);
    this.bus.start();
    await this.bus.waitForLine(/^unix:path=/, 'its address');

    const mounts = [
      `mount --bind ${services} /etc/avahi/services`,
      'mount -t tmpfs castnet-avahi /run',
      'mkdir /run/avahi-daemon',
    ].join(' && ');
    const daemon = `avahi-daemon -f ${join(dir, 'avahi-daemon.conf')} --no-drop-root --no-chroot --no-rlimits`;
    this.avahi = new PodProcess(
      `avahi-daemon of ${this.pod}`,
      this.where,
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', `${mounts} && exec ${daemon}`],
      { env: this.env },
    );
    this.avahi.start();
    const { match } = await this.avahi.waitForLine(
      /Server startup complete\. Host name is (\S+)\.local\./,
      'its start-up',
    );
    return match[1]!;
  }

  /**
   * Publishes `s` as a static service file; resolves when written (the daemon picks it up by
   * inotify; its log says when the service is established, after mDNS probing).
   */
  publish(s: Service): void {
    const dir = join(this.started.dir, 'services');
    const file = join(dir, `${s.name.replace(/[^a-z0-9-]/gi, '_')}.service`);
    // Written aside and renamed, so the daemon never loads half a file.
    writeFileSync(`${file}.tmp`, serviceFile(s));
    renameSync(`${file}.tmp`, file);
  }

  /** How many clients the pod's bus has (the daemon, the tools; counting itself). */
  private async busClients(): Promise<number> {
    const { stdout } = await this.tool('dbus-send', [
      ...['--system', '--print-reply', '--dest=org.freedesktop.DBus'],
      ...['/org/freedesktop/DBus', 'org.freedesktop.DBus.ListNames'],
    ]);
    return [...stdout.matchAll(/string ":\d+\.\d+"/g)].length;
  }

  /**
   * A continuous `avahi-browse -r -p` for `type` in the pod (the caller disposes it); returns once
   * the browser is connected to its daemon (a client more on the pod's bus): in parsable mode it
   * prints nothing until it finds something.
   */
  async browser(type: string): Promise<PodProcess> {
    const before = await this.busClients();
    // Line-buffered: each resolution reaches the test when avahi-browse prints it.
    const b = new PodProcess(
      `avahi-browse on ${this.pod}`,
      this.where,
      'stdbuf',
      ['-oL', 'avahi-browse', '-rp', type],
      { env: this.env },
    );
    b.start();
    try {
      await waitFor(async () => !b.exited && (await this.busClients()) > before, {
        what: `avahi-browse on ${this.pod} to connect to its daemon`,
      });
    } catch (err) {
      await b.dispose();
      throw new Error(`${errorMessage(err)}; it printed:\n${b.output()}`, { cause: err });
    }
    return b;
  }

  /** `avahi-browse -r -t -p type`: what the pod resolves of `type` until its cache is exhausted. */
  async browseOnce(type: string): Promise<Resolved[]> {
    const { stdout } = await this.tool('avahi-browse', ['-rtp', type]);
    return stdout
      .split('\n')
      .map(parseResolvedLine)
      .filter((r): r is Resolved => r !== undefined);
  }

  /** `avahi-resolve -4 -n name`: the address the pod resolves `name` to, or undefined if none. */
  async resolveHost(name: string): Promise<string | undefined> {
    const { stdout } = await this.tool('avahi-resolve', ['-4', '-n', name]).catch(() => ({ stdout: '' }));
    const [host, address] = stdout.trim().split(/\s+/);
    return host === name ? address : undefined;
  }

  private tool(cmd: string, args: string[]): Promise<{ stdout: string }> {
    // runWhere has no env option: the bus address rides on env(1).
    return runWhere(this.where, 'env', [`DBUS_SYSTEM_BUS_ADDRESS=${this.busAddress}`, cmd, ...args], {
      timeoutMs: 20_000,
    });
  }

  /** Stops the daemon, then its bus, and removes the pod's directory; idempotent. */
  async dispose(): Promise<void> {
    await this.avahi?.dispose();
    await this.bus?.dispose();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Publishes `s` on `publisher` while the `others` browse for its type, as a user's service appears
 * on the network: each must resolve it to `expected`, and then `avahi-browse -rt`, as a user runs it,
 * must find exactly it on each. Resolves with the time (ms after the service file was written) the
 * publisher established it and each other pod resolved it: mDNS probing by the publisher, its
 * announcement, the resolution.
 */
export async function publishAndResolve(
  publisher: AvahiPod,
  others: AvahiPod[],
  s: Service,
  expected: Resolved,
): Promise<Record<string, number>> {
  const browsers: PodProcess[] = [];
  try {
    // Browsers run before the service exists, so the time each takes to see it is discovery's.
    for (const o of others) browsers.push(await o.browser(s.type));
    const publishedAt = Date.now();
    publisher.publish(s);
    const established = await publisher.daemon.waitForLine(
      new RegExp(`Service "${s.name}" .* successfully established`),
      `establishing ${s.name}`,
    );
    const times: Record<string, number> = { established: established.line.at - publishedAt };
    for (const [i, b] of browsers.entries()) {
      const o = others[i]!;
      const seen = await b.waitForLine(new RegExp(`^=;${o.iface};IPv4;${s.name};`), `resolving ${s.name}`);
      expect(parseResolvedLine(seen.line.text)).toEqual(expected);
      times[o.pod] = seen.line.at - publishedAt;
    }
    for (const o of others) expect(await o.browseOnce(s.type)).toEqual([expected]);
    return times;
  } finally {
    for (const b of browsers) await b.dispose();
  }
}
