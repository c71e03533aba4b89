// castnet-guest: the lab guest's multicast tool, built static into its initramfs (scripts/guest/build.sh).
// Everything it does goes through the guest's own kernel: joins are IP_ADD_MEMBERSHIP (IGMPv3) and
// IPV6_JOIN_GROUP (MLDv2), or their source-specific forms, and leaving is closing the socket (the
// kernel then reports the leave). Output is one line per event on stdout (the serial console), each
// starting with "castnet-guest " so the host can tell it from other console lines:
//
//   recv   -p PORT [-i IF] [-g GROUP[@SRC[,SRC]]]... [-x]  binds the port (IPv4 and IPv6, beside
//          other sockets: SO_REUSEADDR), joins the groups and prints a line per datagram:
//          castnet-guest rx port=P from=ADDR len=N sum=FNV1A64 data=FIRST_LINE
//          -x: joins only, prints nothing per datagram (the lab's joining application).
//   send   -d DEST -p PORT [-i IF] [-n COUNT] [-t TTL] [-m TEXT] [-s SIZE] [-r PER_SEC] [-l] [-q]
//          DEST: a group, a broadcast or a unicast address, IPv4 or IPv6. The payload is TEXT, padded
//          with '.' to SIZE bytes, ending in a newline. -l: keep a copy of own multicast
//          (IP_MULTICAST_LOOP). -q: sequenced payloads
//          (8-byte big-endian sequence number from 0, then the text), for a `stream` receiver.
//   stream -p PORT [-i IF] [-g GROUP]...  counts sequenced datagrams; on SIGUSR1, and on SIGTERM
//          before it exits, prints: castnet-guest stream {"received":..,"distinct":..,...}
//
// Every command prints "castnet-guest ready ..." once its sockets are bound and its groups joined.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_GROUPS 16
#define MAX_SOURCES 8
#define MAX_SOCKS 2

static void die(const char *what) {
  printf("castnet-guest error %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(const char *why) {
  printf("castnet-guest error usage: %s\n", why);
  exit(2);
}

struct group {
  char addr[64];
  char sources[MAX_SOURCES][64];
  int nsources;
};

struct opts {
  const char *iface, *dest, *text;
  int port, count, ttl, size, rate, sequenced, loop, quiet;
  struct group groups[MAX_GROUPS];
  int ngroups;
};

/** Copies an address argument, refusing one too long to be an address. */
static void copy_address(char dst[64], const char *src) {
  if (strlen(src) >= 64) usage("address too long");
  strcpy(dst, src);
}

static void parse_group(struct group *g, const char *arg) {
  char buf[64 * (MAX_SOURCES + 1)];
  if (strlen(arg) >= sizeof buf) usage("group too long");
  strcpy(buf, arg);
  char *at = strchr(buf, '@');
  if (at) *at++ = 0;
  copy_address(g->addr, buf);
  g->nsources = 0;
  for (char *s = at ? strtok(at, ",") : NULL; s; s = strtok(NULL, ",")) {
    if (g->nsources == MAX_SOURCES) usage("too many sources");
    copy_address(g->sources[g->nsources++], s);
  }
}

static void parse(struct opts *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->iface = "eth0";
  o->count = 1;
  o->ttl = 1;
  o->text = "castnet-guest";
  int c;
  while ((c = getopt(argc, argv, "i:d:p:n:t:m:s:r:g:qlx")) != -1) {
    switch (c) {
    case 'i': o->iface = optarg; break;
    case 'd': o->dest = optarg; break;
    case 'p': o->port = atoi(optarg); break;
    case 'n': o->count = atoi(optarg); break;
    case 't': o->ttl = atoi(optarg); break;
    case 'm': o->text = optarg; break;
    case 's': o->size = atoi(optarg); break;
    case 'r': o->rate = atoi(optarg); break;
    case 'q': o->sequenced = 1; break;
    case 'l': o->loop = 1; break;
    case 'x': o->quiet = 1; break;
    case 'g':
      if (o->ngroups == MAX_GROUPS) usage("too many groups");
      parse_group(&o->groups[o->ngroups++], optarg);
      break;
    default: usage("unknown option");
    }
  }
  if (o->port <= 0 || o->port > 65535) usage("-p PORT is required (1-65535)");
}

static int is_v6(const char *addr) { return strchr(addr, ':') != NULL; }

static unsigned ifindex(const char *iface) {
  unsigned i = if_nametoindex(iface);
  if (!i) die(iface);
  return i;
}

/** A UDP socket bound to the wildcard address of `family` on `port`. */
static int bound_socket(int family, int port) {
  int s = socket(family, SOCK_DGRAM, 0);
  if (s < 0) die("socket");
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) {
    setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind [::]");
  } else {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind 0.0.0.0");
  }
  return s;
}

static void to_storage(const char *addr, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (is_v6(addr)) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1) usage(addr);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    if (inet_pton(AF_INET, addr, &a->sin_addr) != 1) usage(addr);
  }
}

/** Joins `g` on `s` from interface `ifi`: any-source, or each of its sources (MCAST_JOIN_SOURCE_GROUP). */
static void join(int s, const struct group *g, unsigned ifi) {
  int v6 = is_v6(g->addr);
  int level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
  if (g->nsources == 0) {
    if (v6) {
      struct ipv6_mreq m = {.ipv6mr_interface = ifi};
      inet_pton(AF_INET6, g->addr, &m.ipv6mr_multiaddr);
      if (setsockopt(s, level, IPV6_JOIN_GROUP, &m, sizeof m) < 0) die(g->addr);
    } else {
      struct ip_mreqn m = {.imr_ifindex = (int)ifi};
      inet_pton(AF_INET, g->addr, &m.imr_multiaddr);
      if (setsockopt(s, level, IP_ADD_MEMBERSHIP, &m, sizeof m) < 0) die(g->addr);
    }
  } else {
    for (int k = 0; k < g->nsources; k++) {
      struct group_source_req r = {.gsr_interface = ifi};
      to_storage(g->addr, &r.gsr_group);
      to_storage(g->sources[k], &r.gsr_source);
      if (setsockopt(s, level, MCAST_JOIN_SOURCE_GROUP, &r, sizeof r) < 0) die(g->sources[k]);
    }
  }
}

/** An IPv4 and an IPv6 socket on the port, each joined to the groups of its family. */
static int open_receivers(const struct opts *o, int socks[MAX_SOCKS]) {
  unsigned ifi = ifindex(o->iface);
  socks[0] = bound_socket(AF_INET, o->port);
  socks[1] = bound_socket(AF_INET6, o->port);
  for (int k = 0; k < o->ngroups; k++) join(socks[is_v6(o->groups[k].addr) ? 1 : 0], &o->groups[k], ifi);
  return 2;
}

static uint64_t fnv1a64(const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t k = 0; k < n; k++) h = (h ^ p[k]) * 0x100000001b3ULL;
  return h;
}

static void peer_text(const struct sockaddr_storage *ss, char *out, size_t n) {
  if (ss->ss_family == AF_INET6) inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, n);
  else inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, n);
}

static volatile sig_atomic_t stats_wanted, stop_wanted;
static void on_usr1(int sig) { (void)sig; stats_wanted = 1; }
static void on_term(int sig) { (void)sig; stop_wanted = 1; }

/** Waits for a readable socket; returns its index, or -1 when a signal interrupted the wait. */
static int wait_readable(const int *socks, int n) {
  fd_set set;
  FD_ZERO(&set);
  int top = 0;
  for (int k = 0; k < n; k++) {
    FD_SET(socks[k], &set);
    if (socks[k] > top) top = socks[k];
  }
  if (select(top + 1, &set, NULL, NULL, NULL) < 0) {
    if (errno == EINTR) return -1;
    die("select");
  }
  for (int k = 0; k < n; k++)
    if (FD_ISSET(socks[k], &set)) return k;
  return -1;
}

static void signals(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

static unsigned char buf[65536];

static int cmd_recv(const struct opts *o) {
  int socks[MAX_SOCKS];
  int n = open_receivers(o, socks);
  signals();
  printf("castnet-guest ready recv port=%d groups=%d\n", o->port, o->ngroups);
  while (!stop_wanted) {
    int k = wait_readable(socks, n);
    if (k < 0) continue;
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t len = recvfrom(socks[k], buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    if (len < 0 || o->quiet) continue;
    char peer[INET6_ADDRSTRLEN];
    peer_text(&from, peer, sizeof peer);
    // The first line, printable ASCII only, at most 200 bytes: the lab's token and a bit of padding.
    char data[201];
    size_t d = 0;
    while (d < (size_t)len && d < 200 && buf[d] != '\n') {
      data[d] = buf[d] >= 0x21 && buf[d] < 0x7f ? (char)buf[d] : '?';
      d++;
    }
    data[d] = 0;
    printf("castnet-guest rx port=%d from=%s len=%zd sum=%016llx data=%s\n", o->port, peer, len,
           (unsigned long long)fnv1a64(buf, (size_t)len), data);
  }
  printf("castnet-guest done recv port=%d\n", o->port);
  return 0;
}

// The stream receiver's bookkeeping: a bitmap of the sequence numbers seen, relative to the first.
#define SEQ_WINDOW (1u << 24)
static unsigned char seen[SEQ_WINDOW / 8];

struct tally {
  uint64_t received, distinct, duplicates, reordered, out_of_window, first, highest;
  int started;
  double first_ms, last_ms, max_gap_ms, max_gap_at_ms;
};

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void record(struct tally *t, uint64_t seq, double at) {
  t->received++;
  if (!t->started) {
    t->started = 1;
    t->first = t->highest = seq;
    t->first_ms = t->last_ms = at;
  }
  double gap = at - t->last_ms;
  if (gap > t->max_gap_ms) {
    t->max_gap_ms = gap;
    t->max_gap_at_ms = t->last_ms;
  }
  t->last_ms = at;
  if (seq < t->first || seq - t->first >= SEQ_WINDOW) {
    t->out_of_window++;
    return;
  }
  uint64_t i = seq - t->first;
  if (seen[i / 8] & (1u << (i % 8))) {
    t->duplicates++;
    return;
  }
  seen[i / 8] |= (unsigned char)(1u << (i % 8));
  t->distinct++;
  if (seq < t->highest) t->reordered++;
  else t->highest = seq;
}

static void print_tally(const struct tally *t) {
  uint64_t span = t->started ? t->highest - t->first + 1 : 0;
  printf("castnet-guest stream {\"received\":%llu,\"distinct\":%llu,\"duplicates\":%llu,\"reordered\":%llu,"
         "\"lost\":%llu,\"outOfWindow\":%llu,\"first\":%lld,\"last\":%lld,\"maxGapMs\":%.3f,"
         "\"maxGapAfterMs\":%.3f,\"spanMs\":%.3f}\n",
         (unsigned long long)t->received, (unsigned long long)t->distinct, (unsigned long long)t->duplicates,
         (unsigned long long)t->reordered, (unsigned long long)(span - t->distinct),
         (unsigned long long)t->out_of_window, t->started ? (long long)t->first : -1LL,
         t->started ? (long long)t->highest : -1LL, t->max_gap_ms, t->started ? t->max_gap_at_ms - t->first_ms : 0,
         t->started ? t->last_ms - t->first_ms : 0);
}

static int cmd_stream(const struct opts *o) {
  int socks[MAX_SOCKS];
  int n = open_receivers(o, socks);
  signals();
  struct tally t = {0};
  printf("castnet-guest ready stream port=%d groups=%d\n", o->port, o->ngroups);
  while (!stop_wanted) {
    if (stats_wanted) {
      stats_wanted = 0;
      print_tally(&t);
    }
    int k = wait_readable(socks, n);
    if (k < 0) continue;
    ssize_t len = recv(socks[k], buf, sizeof buf, 0);
    if (len < 8) continue;
    uint64_t seq = 0;
    for (int b = 0; b < 8; b++) seq = seq << 8 | buf[b];
    record(&t, seq, now_ms());
  }
  print_tally(&t);
  return 0;
}

static int cmd_send(const struct opts *o) {
  if (!o->dest) usage("-d DEST is required");
  struct sockaddr_storage to;
  to_storage(o->dest, &to);
  int v6 = to.ss_family == AF_INET6;
  unsigned ifi = ifindex(o->iface);
  int s = socket(to.ss_family, SOCK_DGRAM, 0);
  if (s < 0) die("socket");
  int one = 1, loop = o->loop, ttl = o->ttl;
  // Bound to the interface: a broadcast or a group needs no route, and never leaves by another one.
  if (setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, o->iface, (socklen_t)strlen(o->iface)) < 0) die("SO_BINDTODEVICE");
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&to;
    a->sin6_port = htons(o->port);
    if (IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr) || IN6_IS_ADDR_MC_LINKLOCAL(&a->sin6_addr)) a->sin6_scope_id = ifi;
    setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifi, sizeof ifi);
    setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof ttl);
    setsockopt(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl);
    setsockopt(s, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop);
  } else {
    ((struct sockaddr_in *)&to)->sin_port = htons(o->port);
    struct ip_mreqn m = {.imr_ifindex = (int)ifi};
    setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m);
    setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
    setsockopt(s, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    setsockopt(s, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop);
    setsockopt(s, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
  }
  size_t text = strlen(o->text);
  size_t head = o->sequenced ? 8 : 0;
  size_t len = head + text + 1;
  if (o->size > 0 && (size_t)o->size > len) len = (size_t)o->size;
  if (len > sizeof buf) usage("-s SIZE too large");
  memset(buf, '.', len);
  memcpy(buf + head, o->text, text);
  buf[len - 1] = '\n';
  double interval = o->rate > 0 ? 1e3 / o->rate : 0, start = now_ms();
  socklen_t tl = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  printf("castnet-guest ready send to=%s port=%d count=%d\n", o->dest, o->port, o->count);
  int sent = 0;
  for (uint64_t k = 0; k < (uint64_t)o->count; k++) {
    if (o->sequenced)
      for (int b = 0; b < 8; b++) buf[b] = (unsigned char)(k >> (56 - 8 * b));
    if (interval > 0) {
      double due = start + (double)k * interval, wait = due - now_ms();
      if (wait > 0) {
        struct timespec ts = {.tv_sec = (time_t)(wait / 1e3), .tv_nsec = (long)((wait - (time_t)(wait / 1e3) * 1e3) * 1e6)};
        nanosleep(&ts, NULL);
      }
    }
    if (sendto(s, buf, len, 0, (struct sockaddr *)&to, tl) < 0) die("sendto");
    sent++;
  }
  printf("castnet-guest sent to=%s port=%d count=%d\n", o->dest, o->port, sent);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) usage("castnet-guest recv|send|stream [options]");
  const char *cmd = argv[1];
  struct opts o;
  parse(&o, argc - 1, argv + 1);
  if (!strcmp(cmd, "recv")) return cmd_recv(&o);
  if (!strcmp(cmd, "send")) return cmd_send(&o);
  if (!strcmp(cmd, "stream")) return cmd_stream(&o);
  usage(cmd);
  return 2;
}
