// The UDP socket of the underlay health probes, made here because node:dgram cannot set
// IP_MTU_DISCOVER: every probe leaves with DF set and is never fragmented, not even by this node, so
// a full-size probe either arrives whole or is lost, and an MTU black hole cannot hide behind
// fragmentation. PMTUDISC_PROBE rather than DO: a path MTU learned from an ICMP message must not
// stop the probes (they test the path each time, and see it recover); a probe larger than the
// local interface's MTU fails at once with EMSGSIZE. node:dgram then adopts the bound descriptor.
import { ipFamily } from '../netaddr/ip.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
} from '../sys/constants.js';
import { check, libc } from '../sys/libc.js';
import { setIntOption } from '../sys/sockopt.js';
import { encodeSockaddr } from './sockaddr.js';

const IP_MTU_DISCOVER = 10;
const IP_PMTUDISC_PROBE = 3;
const IPV6_MTU_DISCOVER = 23;
const IPV6_PMTUDISC_PROBE = 3;
/** IPv6 fragments locally what exceeds the interface MTU unless told not to. */
const IPV6_DONTFRAG = 62;

/** A UDP socket bound to (address, port) that never fragments what it sends. Returns its fd. */
export function openDontFragmentSocket(address: string, port: number): number {
  const family = ipFamily(address, 'health probe address');
  const sa = encodeSockaddr(address, port, 'health probe address');
  const c = libc();
  const where = `health probes ${family === 6 ? `[${address}]` : address}:${port}`;
  const fd = check(
    `socket for ${where}`,
    c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
  );
  try {
    if (family === 4) {
      setIntOption(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, 'IP_MTU_DISCOVER');
    } else {
      setIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, 'IPV6_V6ONLY');
      setIntOption(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, 'IPV6_MTU_DISCOVER');
      setIntOption(fd, IPPROTO_IPV6, IPV6_DONTFRAG, 1, 'IPV6_DONTFRAG');
    }
    check(`bind ${where}`, c.bind(fd, sa, sa.length));
    return fd;
  } catch (err) {
    c.close(fd);
    throw err;
  }
}

/** Closes a descriptor that node:dgram did not adopt. */
export function closeFd(fd: number): void {
  libc().close(fd);
}
