// Eclipse Cyclone DDS (the `cyclonedds` Python binding from PyPI, installed by
// scripts/install-python-packages.sh into a venv) in lab pods: a participant program, its
// configuration, and what it reports.
import { join } from 'node:path';
import { repoRoot } from '../harness/cni.js';
import { waitFor } from '../../pkg/base/async.js';
import { PodProcess } from '../harness/pod-process.js';
import type { Where } from '../harness/where.js';

/** The venv's interpreter (make's python-deps step creates it). */
export const DDS_PYTHON = join(process.env.CASTNET_CACHE ?? join(repoRoot, '.cache'), 'python/bin/python');

/**
 * CYCLONEDDS_URI for a pod: its `iface` only (eth0 in the lab, net1 on the cluster), multicast on, no configured peers, so participants can
 * only find each other by SPDP multicast (239.255.0.1), the DDS default.
 */
export function ddsConfig(domain: number, iface = 'eth0'): string {
  return `<CycloneDDS><Domain id="${domain}"><General>
<Interfaces><NetworkInterface name="${iface}" multicast="true"/></Interfaces>
<AllowMulticast>true</AllowMulticast>
</General><Discovery><ParticipantIndex>none</ParticipantIndex></Discovery></Domain></CycloneDDS>`;
}

/**
 * One DDS participant, on domain argv[2], that prints JSON lines ({"event", "at": epoch ms, ...}):
 * - "participant" (its GUID) once created; "discovered" (a GUID) for each other participant that
 *   SPDP brings in;
 * - as "writer" (argv[1]) of the reliable topic: waits for argv[3] matched readers ("matched"),
 *   writes argv[4] samples numbered 0.. with a payload derived from the number, waits until every
 *   reader acknowledged them ("acked");
 * - as "reader": "matched" once it has the writer, then takes samples until its stdin closes and
 *   reports what it got ("received": counts of samples, distinct numbers, duplicates, out of order,
 *   damaged payloads, and the numbers missing below argv[4]).
 * - as "peer": only a participant, until its stdin closes.
 * Reliable, keep-all history on both sides: a writer blocks rather than drop a sample.
 */
export const DDS_PARTICIPANT = `
import json, sys, threading, time
from dataclasses import dataclass
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsParticipant
from cyclonedds.core import Policy, Qos, ReadCondition, SampleState, ViewState, InstanceState, WaitSet
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import int64
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

out = threading.Lock()  # two threads print: one line at a time
def say(event, **kv):
    line = json.dumps({"event": event, "at": time.time() * 1000, **kv}) + "\\n"
    with out:
        sys.stdout.write(line)
        sys.stdout.flush()

@dataclass
class Sample(IdlStruct, typename="castnet.Sample"):
    seq: int64
    payload: str

def payload(seq):
    return "castnet-%08d" % seq

role, domain, readers, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
dp = DomainParticipant(domain)
say("participant", guid=str(dp.guid))

seen = set()
def watch_participants():
    ws = WaitSet(dp)
    pr = BuiltinDataReader(dp, BuiltinTopicDcpsParticipant)
    cond = ReadCondition(pr, SampleState.NotRead | ViewState.Any | InstanceState.Alive)
    ws.attach(cond)
    while True:
        for p in pr.take(N=64, condition=cond):
            if p.key != dp.guid and p.key not in seen:
                seen.add(p.key)
                say("discovered", guid=str(p.key))
        ws.wait(duration(seconds=1))
threading.Thread(target=watch_participants, daemon=True).start()
if role == "peer":
    sys.stdin.read()
    sys.exit(0)

qos = Qos(
    Policy.Reliability.Reliable(max_blocking_time=duration(seconds=10)),
    Policy.History.KeepAll,
    Policy.Durability.Volatile,
)
topic = Topic(dp, "castnet_samples", Sample, qos=qos)

if role == "writer":
    w = DataWriter(dp, topic, qos=qos)
    while w.get_publication_matched_status().current_count < readers:
        time.sleep(0.01)
    say("matched", readers=readers)
    for seq in range(count):
        w.write(Sample(seq=seq, payload=payload(seq)))
    say("written", samples=count)
    ok = w.wait_for_acks(duration(seconds=60))
    say("acked", ok=bool(ok))
    sys.stdin.read()
else:
    r = DataReader(dp, topic, qos=qos)
    while r.get_subscription_matched_status().current_count < 1:
        time.sleep(0.01)
    say("matched")
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    ws = WaitSet(dp)
    cond = ReadCondition(r, SampleState.NotRead | ViewState.Any | InstanceState.Alive)
    ws.attach(cond)
    got, first, last, prev = [], None, None, -1
    out_of_order = damaged = 0
    def drain():
        global first, last, prev, out_of_order, damaged
        for s in r.take(N=4096, condition=cond):
            now = time.time() * 1000
            first = first if first is not None else now
            last = now
            got.append(s.seq)
            if s.seq <= prev: out_of_order += 1
            if s.payload != payload(s.seq): damaged += 1
            prev = s.seq
    while not closed.is_set():
        drain()
        ws.wait(duration(milliseconds=100))
    drain()
    distinct = set(got)
    say("received", samples=len(got), distinct=len(distinct), duplicates=len(got) - len(distinct),
        outOfOrder=out_of_order, damaged=damaged,
        missing=[s for s in range(count) if s not in distinct][:50],
        missingCount=sum(1 for s in range(count) if s not in distinct),
        firstAt=first, lastAt=last)
`;

export interface DdsEvent {
  event: string;
  at: number;
  [field: string]: unknown;
}

/** The JSON events a participant printed so far. */
export function ddsEvents(p: PodProcess): DdsEvent[] {
  return p.lines
    .filter((l) => l.stream === 'stdout' && l.text.startsWith('{'))
    .map((l) => JSON.parse(l.text) as DdsEvent);
}

/** A participant in the pod `where` (its stdin open: closing it ends a reader's run). */
export function ddsParticipant(
  label: string,
  where: Where,
  role: 'writer' | 'reader' | 'peer',
  opts: { domain: number; readers: number; samples: number; iface?: string },
): PodProcess {
  return new PodProcess(
    label,
    where,
    DDS_PYTHON,
    ['-c', DDS_PARTICIPANT, role, String(opts.domain), String(opts.readers), String(opts.samples)],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, CYCLONEDDS_URI: ddsConfig(opts.domain, opts.iface) },
    },
  );
}

/** The first `event` the participant printed, if any. */
export function eventOf(p: PodProcess, event: string): DdsEvent | undefined {
  return ddsEvents(p).find((e) => e.event === event);
}

/** Waits for the participant's first `event`. */
export async function awaitEvent(p: PodProcess, event: string, timeoutMs = 60_000): Promise<DdsEvent> {
  await p.waitForLine(new RegExp(`^\\{"event": "${event}"`), `its "${event}" event`, { timeoutMs });
  return eventOf(p, event)!;
}

/** The GUIDs `p` discovered so far. */
export function discovered(p: PodProcess): string[] {
  return ddsEvents(p)
    .filter((e) => e.event === 'discovered')
    .map((e) => e.guid as string)
    .sort();
}

/** Waits until `p` discovered exactly the `others`' GUIDs (and fails if it found anyone else). */
export async function discoversExactly(p: PodProcess, others: string[]): Promise<void> {
  await waitFor(() => discovered(p).length >= others.length, {
    what: `${p.label} to discover ${others.length} other participant(s)`,
    timeoutMs: 60_000,
  });
  expect(discovered(p)).toEqual([...others].sort());
}

/**
 * From the participants' events: each pair's discovery time, ms from the moment both participants
 * existed, keyed `observer->participant` by `names`.
 */
export function discoveryTimes(participants: PodProcess[], names: string[]): Record<string, number> {
  const guids = participants.map((p) => eventOf(p, 'participant')!.guid);
  const times: Record<string, number> = {};
  for (const [i, p] of participants.entries())
    for (const e of ddsEvents(p).filter((e) => e.event === 'discovered')) {
      const j = guids.indexOf(e.guid);
      const since = Math.max(eventOf(p, 'participant')!.at, eventOf(participants[j]!, 'participant')!.at);
      times[`${names[i]}->${names[j]}`] = Math.round(e.at - since);
    }
  return times;
}

/** What a reader of the reliable topic must report: every sample once, in order, intact. */
export function everySampleOnce(got: DdsEvent, samples: number): void {
  const { samples: n, distinct, duplicates, outOfOrder, damaged, missing, missingCount } = got;
  expect({ samples: n, distinct, duplicates, outOfOrder, damaged, missing, missingCount }).toEqual({
    samples,
    distinct: samples,
    duplicates: 0,
    outOfOrder: 0,
    damaged: 0,
    missing: [],
    missingCount: 0,
  });
}
