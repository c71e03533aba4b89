import type { EndpointRecord } from '../port.js';
import { fromReport, toReportSpec } from './convert.js';

describe('MembershipReport conversion', () => {
  it('carries an endpoint’s allowed address pairs and its claims both ways', () => {
    const node = { name: 'n1', address: '192.0.2.1', port: 4790, poolIndex: 1 };
    const endpoint: EndpointRecord = {
      network: 'blue',
      node: 'n1',
      endpointId: 7,
      mac: '02:00:00:00:00:07',
      ips: ['10.40.0.7'],
      allowedAddresses: ['10.40.200.1'],
      claims: [{ address: '10.40.200.1', at: Date.parse('2026-12-02T08:00:00.123Z') }],
    };
    const spec = toReportSpec({ node, endpoints: [endpoint], memberships: [] });
    expect(spec.endpoints?.[0]).toMatchObject({
      allowedAddresses: ['10.40.200.1'],
      claims: [{ address: '10.40.200.1', at: '2026-12-02T08:00:00.123Z' }],
    });
    expect(fromReport({ metadata: { name: 'n1' }, spec }).endpoints).toEqual([endpoint]);
    // An endpoint without pairs publishes neither field.
    const plain = { ...endpoint, allowedAddresses: undefined, claims: undefined };
    expect(
      Object.keys(toReportSpec({ node, endpoints: [plain], memberships: [] }).endpoints![0]!),
    ).not.toContain('claims');
  });

  it('carries the node’s wire version and public key both ways, and nothing for a version 1 node', () => {
    const node = {
      name: 'n1',
      address: '192.0.2.1',
      port: 4790,
      poolIndex: 1,
      wireVersion: 2,
      wireKey: { epoch: 1764662400, publicKey: Buffer.alloc(32, 9).toString('base64') },
    };
    const spec = toReportSpec({ node, endpoints: [], memberships: [] });
    expect(spec.underlay).toEqual({
      address: '192.0.2.1',
      port: 4790,
      wireVersion: 2,
      publicKey: node.wireKey.publicKey,
      keyEpoch: 1764662400,
    });
    expect(fromReport({ metadata: { name: 'n1' }, spec }).node).toEqual(node);
    const v1 = { name: 'n1', address: '192.0.2.1', port: 4790, poolIndex: 1 };
    const old = toReportSpec({ node: v1, endpoints: [], memberships: [] });
    expect(old.underlay).toEqual({ address: '192.0.2.1', port: 4790 });
    expect(fromReport({ metadata: { name: 'n1' }, spec: old }).node).toEqual(v1);
  });
});
