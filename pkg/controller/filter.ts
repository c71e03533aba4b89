// Merging IGMPv3/MLDv2 source filters of one endpoint reached through several paths, the way RFC 9776
// section 3.2 merges per-socket filters into an interface's state: include wins only if all include.
import type { SourceFilter } from '../lookup/port.js';

export const ANY_SOURCE: SourceFilter = { mode: 'exclude', sources: [] };

export function mergeFilters(a: SourceFilter, b: SourceFilter): SourceFilter {
  if (a.mode === 'include' && b.mode === 'include') {
    return { mode: 'include', sources: sorted(new Set([...a.sources, ...b.sources])) };
  }
  if (a.mode === 'exclude' && b.mode === 'exclude') {
    const inB = new Set(b.sources);
    return { mode: 'exclude', sources: sorted(new Set(a.sources.filter((s) => inB.has(s)))) };
  }
  const [exc, inc] = a.mode === 'exclude' ? [a, b] : [b, a];
  const included = new Set(inc.sources);
  return { mode: 'exclude', sources: sorted(new Set(exc.sources.filter((s) => !included.has(s)))) };
}

/** True when the filter lets every source through. */
export const isAnySource = (f: SourceFilter): boolean => f.mode === 'exclude' && f.sources.length === 0;

const sorted = (s: Set<string>): string[] => [...s].sort();
