// metav1.Condition bookkeeping: lastTransitionTime moves only when the status flips.
import type { Condition } from './types.js';

export type DesiredCondition = Omit<Condition, 'lastTransitionTime'>;

/** The desired conditions, keeping each previous lastTransitionTime whose status did not change. */
export function applyConditions(
  previous: Condition[] | undefined,
  desired: DesiredCondition[],
  now: string,
): Condition[] {
  const before = new Map((previous ?? []).map((c) => [c.type, c]));
  return desired.map((d) => {
    const prev = before.get(d.type);
    return { ...d, lastTransitionTime: prev && prev.status === d.status ? prev.lastTransitionTime : now };
  });
}

export const findCondition = (cs: Condition[] | undefined, type: string): Condition | undefined =>
  cs?.find((c) => c.type === type);
