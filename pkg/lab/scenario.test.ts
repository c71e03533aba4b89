import { readFileSync } from 'node:fs';
import { defaultScenarioPath, parseLabFile } from './scenario.js';

describe('lab scenario files', () => {
  it('parses the default suite, which covers what `make lab` promises', () => {
    const f = parseLabFile(readFileSync(defaultScenarioPath(), 'utf8'));
    expect(f.nodes).toBe(3);
    expect(f.networks.map((n) => n.subnets[0])).toEqual(['10.20.0.0/16', '10.20.0.0/16', '10.30.0.0/16']);
    const names = f.scenarios.map((s) => s.name);
    expect(names).toEqual(
      expect.arrayContaining(['asm', 'ssm', 'nested', 'broadcast', 'link-local', 'guests']),
    );
    expect(f.pods.filter((p) => p.vm).map((p) => [p.name, p.vm!.memory])).toEqual([
      ['vm1', 256],
      ['vm2', 256],
    ]);
    expect(f.networks[0]!.mtu).toBe(1400);
  });

  it.each([
    ['nodes: x', /nodes: Invalid input: expected number/],
    ['nodes: 1\nnetworks: []\npods: []\nscenarios: []', /networks: Too small/],
    [': : :', /not valid YAML/],
  ])('rejects %j naming the field', (text, re) => {
    expect(() => parseLabFile(text)).toThrow(re);
  });

  it('names a pod on a node that does not exist, and an unknown pod in a step', () => {
    const text = `
nodes: 1
networks: [{ name: blue, id: 1, subnets: [10.0.0.0/24] }]
pods: [{ name: a, node: 3, network: blue }]
scenarios: [{ name: s, steps: [{ send: { from: zz, to: 239.1.1.1 } }] }]
`;
    expect(() => parseLabFile(text)).toThrow(
      /pods\.0\.node: no node 3.*scenarios\.0\.steps\.0: unknown pod zz/,
    );
  });
});

describe('VM pods', () => {
  const file = (pod: string, step: string) => `
nodes: 2
networks: [{ name: blue, id: 1, subnets: [10.0.0.0/24] }]
pods: [${pod}]
scenarios: [{ name: s, steps: [${step}] }]
`;

  it('name the field of a bad memory size', () => {
    expect(() =>
      parseLabFile(file('{ name: a, node: 0, network: blue, vm: { memory: 16 } }', '{ sleep: 1 }')),
    ).toThrow(/pods\.0\.vm\.memory/);
  });

  it("join with their guest's own tool, and migrate for real (a VMI pod only)", () => {
    const vm = '{ name: a, node: 0, network: blue, vmi: x, vm: {} }';
    expect(() => parseLabFile(file(vm, '{ join: { pod: a, group: 239.1.1.1, app: iperf } }'))).toThrow(
      /steps\.0\.join\.app: a's guest joins with castnet-guest/,
    );
    expect(
      parseLabFile(file(vm, '{ migrate: { pod: a, toNode: 1, as: b } }')).scenarios[0]!.steps[0],
    ).toEqual({
      kind: 'migrate',
      pod: 'a',
      toNode: 1,
      as: 'b',
    });
    const notVmi = '{ name: a, node: 0, network: blue, vm: {} }';
    expect(() => parseLabFile(file(notVmi, '{ migrate: { pod: a, toNode: 1, as: b } }'))).toThrow(
      /a is not a VMI pod/,
    );
  });
});

describe('lab steps', () => {
  it('are tagged with their kind, with the defaults filled in', () => {
    const f = parseLabFile(`
nodes: 1
networks: [{ name: blue, id: 1, subnets: [10.0.0.0/24] }]
pods: [{ name: a, node: 0, network: blue }]
scenarios: [{ name: s, steps: [{ send: { from: a, to: 239.1.1.1 } }, { expect: {} }, { sleep: 5 }] }]
`);
    expect(f.scenarios[0]!.steps).toEqual([
      { kind: 'send', from: 'a', to: '239.1.1.1', port: 5000, ttl: 1, count: 1, loopback: false },
      { kind: 'expect', received: {}, frames: {} },
      { kind: 'sleep', ms: 5 },
    ]);
  });

  it('restartVm: its new pod may be named by later steps, and its node must exist', () => {
    const file = (toNode: number) => `
nodes: 2
networks: [{ name: blue, id: 1, subnets: [10.0.0.0/24] }]
pods: [{ name: v, node: 0, network: blue, vmi: vm1 }]
scenarios: [{ name: s, steps: [{ restartVm: { pod: v, toNode: ${toNode}, as: w } }, { ping: { from: w, to: w } }] }]
`;
    expect(parseLabFile(file(1)).scenarios[0]!.steps[0]).toEqual({
      kind: 'restartVm',
      pod: 'v',
      toNode: 1,
      as: 'w',
    });
    expect(() => parseLabFile(file(2))).toThrow(/scenarios\.0\.steps\.0: no node 2/);
  });
});

describe('lab expectations', () => {
  const file = (step: string) => `
nodes: 1
networks: [{ name: blue, id: 1, subnets: [10.0.0.0/24] }]
pods: [{ name: a, node: 0, network: blue }]
scenarios: [{ name: s, steps: [${step}] }]
`;

  it('has no opt-in silence list: every pod not named must receive nothing', () => {
    expect(() => parseLabFile(file('{ expect: { nothing: [a] } }'))).toThrow(/nothing/);
  });

  it('keeps the control port for the positive controls', () => {
    expect(() => parseLabFile(file('{ send: { from: a, to: 239.1.1.1, port: 4999 } }'))).toThrow(
      /port: 4999 is the lab's control port/,
    );
  });
});
