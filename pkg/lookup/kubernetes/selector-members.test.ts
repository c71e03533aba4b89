// Which of a node's endpoints an agent reports as selector members (pure; no apiserver).
import type { LabeledObject, MulticastGroup, MulticastGroupSpec } from '../../k8s/types.js';
import type { EndpointRecord } from '../port.js';
import { selectorMemberships, type SelectableObjects } from './selector-members.js';

const group = (name: string, spec: Partial<MulticastGroupSpec>, namespace = 'team'): MulticastGroup => ({
  metadata: { name, namespace },
  spec: { network: 'blue', address: '239.1.1.1', ...spec },
});

const ep = (id: number, pod: string, extra: Partial<EndpointRecord> = {}): EndpointRecord => ({
  network: 'blue',
  node: 'n1',
  endpointId: id,
  mac: `02:00:00:00:00:0${id}`,
  ips: [`10.0.0.${id}`],
  pod: { namespace: 'team', name: pod, uid: `uid-${pod}` },
  ...extra,
});

function objects(pods: LabeledObject[], vmis: LabeledObject[] = []): SelectableObjects {
  const find = (list: LabeledObject[]) => (ns: string, name: string) =>
    list.find((o) => o.namespace === ns && o.name === name);
  return { pod: find(pods), vmi: find(vmis) };
}

const pod = (name: string, labels: Record<string, string>, namespace = 'team'): LabeledObject => ({
  namespace,
  name,
  uid: `uid-${name}`,
  labels,
});

const feed = group('feed', { selectors: { pods: { matchLabels: { app: 'feed' } } } });
const members = (r: ReturnType<typeof selectorMemberships>) => r.map((m) => `${m.group}/${m.endpointId}`);

describe('selectorMemberships', () => {
  test('reports the node’s endpoints whose pods match, marked via selector, with any source', () => {
    const r = selectorMemberships(
      'n1',
      [feed],
      [ep(1, 'a'), ep(2, 'b')],
      objects([pod('a', { app: 'feed' }), pod('b', { app: 'other' })]),
    );
    expect(r).toEqual([
      {
        network: 'blue',
        group: '239.1.1.1',
        node: 'n1',
        endpointId: 1,
        filter: { mode: 'exclude', sources: [] },
        via: 'selector',
      },
    ]);
  });

  test('selects only in the group’s namespace, on the group’s network, on this node', () => {
    const eps = [
      ep(1, 'a', { pod: { namespace: 'other', name: 'a', uid: 'uid-a' } }),
      ep(2, 'b', { network: 'red' }),
      ep(3, 'c', { node: 'n2' }),
      ep(4, 'd'),
    ];
    const pods = [
      pod('a', { app: 'feed' }, 'other'),
      pod('b', { app: 'feed' }),
      pod('c', { app: 'feed' }),
      pod('d', { app: 'feed' }),
    ];
    expect(members(selectorMemberships('n1', [feed], eps, objects(pods)))).toEqual(['239.1.1.1/4']);
  });

  test('an endpoint of an earlier pod of the same name (another UID), or of no pod, is not selected', () => {
    const stale = ep(1, 'a', { pod: { namespace: 'team', name: 'a', uid: 'old' } });
    expect(
      selectorMemberships('n1', [feed], [stale, ep(2, 'gone')], objects([pod('a', { app: 'feed' })])),
    ).toEqual([]);
  });

  test('a vmis selector selects the endpoint of a VM by its VMI’s labels', () => {
    const vm = ep(5, 'virt-launcher-db-0-abcde', { vm: { namespace: 'team', name: 'db-0' } });
    const g = group('db', {
      selectors: { vmis: { matchExpressions: [{ key: 'role', operator: 'In', values: ['db'] }] } },
    });
    const objs = (role: string) => objects([pod('virt-launcher-db-0-abcde', {})], [pod('db-0', { role })]);
    expect(members(selectorMemberships('n1', [g], [vm], objs('db')))).toEqual(['239.1.1.1/5']);
    expect(selectorMemberships('n1', [g], [vm], objs('web'))).toEqual([]);
  });

  test('one membership per address and endpoint, however many groups select it; addresses canonical', () => {
    const again = group('feed2', {
      address: '239.1.1.1',
      selectors: { pods: { matchExpressions: [{ key: 'app', operator: 'Exists' }] } },
    });
    const mac = group('l2', {
      address: '01:00:5E:01:02:03',
      selectors: { pods: { matchLabels: { app: 'feed' } } },
    });
    const r = selectorMemberships(
      'n1',
      [feed, again, mac],
      [ep(1, 'a')],
      objects([pod('a', { app: 'feed' })]),
    );
    expect(members(r)).toEqual(['01:00:5e:01:02:03/1', '239.1.1.1/1']);
  });

  test('on an SSM address a selected member receives from the group’s allowed sources (INCLUDE)', () => {
    const ssm = group('ssm', {
      address: '232.1.1.1',
      allowedSources: ['10.0.9.9'],
      selectors: feed.spec.selectors,
    });
    const [m] = selectorMemberships('n1', [ssm], [ep(1, 'a')], objects([pod('a', { app: 'feed' })]));
    expect(m!.filter).toEqual({ mode: 'include', sources: ['10.0.9.9'] });
  });

  test('an empty selector (which the CRD rejects) selects nothing', () => {
    const empty = group('empty', { selectors: { pods: {} } });
    expect(selectorMemberships('n1', [empty], [ep(1, 'a')], objects([pod('a', { app: 'feed' })]))).toEqual(
      [],
    );
  });
});
