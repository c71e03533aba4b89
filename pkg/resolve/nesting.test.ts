import { MAX_GROUP_DEPTH, NestingGraph, reachableGroups } from './nesting.js';

// Graphs as adjacency lists over names; each test builds its own NestingGraph.
const graphOf = (edges: Record<string, string[]>): NestingGraph<string> =>
  new NestingGraph((g) => edges[g] ?? []);

const chain = (levels: number): Record<string, string[]> =>
  Object.fromEntries(
    Array.from({ length: levels + 1 }, (_, i) => [`g${i}`, i < levels ? [`g${i + 1}`] : []]),
  );

describe('NestingGraph', () => {
  it('accepts a tree, a diamond and a chain of exactly the limit', () => {
    expect(graphOf({ a: ['b', 'c'], b: ['d'], c: ['d'] }).check(['a'])).toBeUndefined();
    expect(graphOf(chain(MAX_GROUP_DEPTH)).check(['g0'])).toBeUndefined();
  });

  it('rejects a chain one level over the limit, with the whole chain', () => {
    const g = graphOf(chain(MAX_GROUP_DEPTH + 1));
    expect(g.check(['g0'])).toEqual({
      code: 'too-deep',
      path: Array.from({ length: MAX_GROUP_DEPTH + 2 }, (_, i) => `g${i}`),
    });
    expect(g.check(['g1'])).toBeUndefined();
  });

  it('rejects every group that reaches a cycle, each with the path from itself', () => {
    const g = graphOf({ r: ['a'], a: ['b'], b: ['c'], c: ['a'], x: ['y'] });
    expect(g.check(['r'])).toEqual({ code: 'cycle', path: ['r', 'a', 'b', 'c', 'a'] });
    expect(g.check(['b'])).toEqual({ code: 'cycle', path: ['b', 'c', 'a', 'b'] });
    expect(g.check(['a'])).toEqual({ code: 'cycle', path: ['a', 'b', 'c', 'a'] });
    expect(g.check(['x'])).toBeUndefined();
    expect(graphOf({ s: ['s'] }).check(['s'])).toEqual({ code: 'cycle', path: ['s', 's'] });
  });

  it('judges the declarations of one address together, a cycle before depth whatever their order', () => {
    const g = graphOf({ ...chain(MAX_GROUP_DEPTH + 1), a: ['b'], b: ['a'] });
    expect(g.check(['g0', 'a'])?.code).toBe('cycle');
    expect(g.check(['a', 'g0'])?.code).toBe('cycle');
    expect(g.check(['g0', 'g5'])?.code).toBe('too-deep');
  });

  it('is linear on wide diamonds and iterative on long chains', () => {
    let visits = 0;
    const width = 40;
    const layers = 8;
    const g = new NestingGraph<string>((n) => {
      visits++;
      const [l] = n.split('.').map(Number);
      return l < layers - 1 ? Array.from({ length: width }, (_, w) => `${l + 1}.${w}`) : [];
    });
    expect(g.check(['0.0'])).toBeUndefined();
    expect(visits).toBeLessThanOrEqual(width * layers);
    // Far deeper than the JS call stack allows for a recursive walk.
    const long = graphOf(chain(200_000));
    expect(long.check(['g0'])?.code).toBe('too-deep');
    expect(long.check(['g199995'])).toBeUndefined();
  });
});

describe('reachableGroups', () => {
  it('lists each reachable group once, roots first, and stops where told', () => {
    const edges: Record<string, string[]> = { a: ['b', 'c'], b: ['d'], c: ['d', 'e'], e: ['f'] };
    const kids = (g: string): string[] => edges[g] ?? [];
    expect(reachableGroups(['a'], kids)).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(reachableGroups(['a'], kids, (g) => g !== 'c')).toEqual(['a', 'b', 'c', 'd']);
  });
});
