// The data plane's directory: this node's joins from its querier, its selector members from the
// lookup service (pure).
import type { Directory, MembershipRecord } from '../../lookup/port.js';
import { withLocalState } from './local-directory.js';

const m = (node: string, endpointId: number, via?: 'selector'): MembershipRecord => ({
  network: 'blue',
  group: '239.1.1.1',
  node,
  endpointId,
  filter: { mode: 'exclude', sources: [] },
  ...(via ? { via } : {}),
});

test('this node’s joins come from the querier; its selector members and other nodes’ records stay', () => {
  const d: Directory = {
    networks: [],
    nodes: [],
    endpoints: [],
    groups: [],
    memberships: [m('n1', 1), m('n1', 2, 'selector'), m('n2', 3), m('n2', 4, 'selector')],
  };
  const local = withLocalState(d, 'n1', [], [m('n1', 5)]);
  const ids = local.memberships.map((r) => `${r.node}/${r.endpointId}${r.via ? ':selector' : ''}`);
  expect(ids.sort()).toEqual(['n1/2:selector', 'n1/5', 'n2/3', 'n2/4:selector']);
});
