// The CniError a call throws, for tests that check its code and message; anything else fails the test.
import { CniError } from '../../pkg/cni/types.js';

export function cniErrorOf(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err;
    throw err;
  }
  throw new Error('expected a CniError');
}
