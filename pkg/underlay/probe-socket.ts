// The UDP socket of the underlay health probes, made here because node:dgram cannot set
// IP_MTU_DISCOVER: every probe leaves with DF set and is never fragmented, not even by this node, so
// a full-size probe either arrives whole or is lost, and an MTU black hole cannot hide behind
// fragmentation. PMTUDISC_PROBE rather than DO: a path MTU learned from an ICMP message must not
// stop the probes (they test the path each time, and see it recover); a probe larger than the
// local interface's MTU fails at once with EMSGSIZE. node:dgram then adopts the bound descriptor.
import { SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, check, libc } from '../sys/libc.js';
import { AF_INET, AF_INET6, encodeSockaddr, familyOf } from './sockaddr.js';
import { IPPROTO_IPV6, IPV6_V6ONLY, setInt } from './udp.js';

const IPPROTO_IP = 0;
const IP_MTU_DISCOVER = 10;
const IP_PMTUDISC_PROBE = 3;
const IPV6_MTU_DISCOVER = 23;
const IPV6_PMTUDISC_PROBE = 3;
/** IPv6 fragments locally what exceeds the interface MTU unless told not to. */
const IPV6_DONTFRAG = 62;

/** A UDP socket bound to (address, port) that never fragments what it sends. Returns its fd. */
export function openDontFragmentSocket(address: string, port: number): number {
  const family = familyOf(address, 'health probe address');
  const sa = encodeSockaddr(address, port, 'health probe address');
  const c = libc();
  const where = `health probes ${family === 6 ? `[${address}]` : address}:${port}`;
  const fd = check(
    `socket for ${where}`,
    c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
  );
  try {
    if (family === 4) {
      setInt(fd, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, 'setsockopt(IP_MTU_DISCOVER)', IPPROTO_IP);
    } else {
      setInt(fd, IPV6_V6ONLY, 1, 'setsockopt(IPV6_V6ONLY)', IPPROTO_IPV6);
      setInt(fd, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, 'setsockopt(IPV6_MTU_DISCOVER)', IPPROTO_IPV6);
      setInt(fd, IPV6_DONTFRAG, 1, 'setsockopt(IPV6_DONTFRAG)', IPPROTO_IPV6);
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
