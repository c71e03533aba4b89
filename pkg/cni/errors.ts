// Maps schema validation failures to CNI errors that name the offending field and the reason.
// Reusable by anything that validates user input with zod and reports it in CNI's error format.
import type { z } from 'zod';
import { CniError, CniErrorCode } from './types.js';

/** zod `params` key through which a refinement asks for a specific CNI error code. */
export const CNI_CODE_PARAM = 'cniCode';

/** `ipam.type`, `prevResult.ips[0].address`, `cni.dev/valid-attachments[2]`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(top level)' : out;
}

/** A short, human description of a value's JSON type, for "must be X, not Y" messages. */
export function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `${typeof value} ${JSON.stringify(value)}`;
}

/** Why one issue failed, in words; relies on issues parsed with `reportInput: true`. */
export function issueReason(issue: z.core.$ZodIssue): string {
  const got = 'input' in issue ? issue.input : undefined;
  switch (issue.code) {
    case 'invalid_type':
      return got === undefined ? 'is required' : `must be ${article(issue.expected)}, not ${jsonType(got)}`;
    case 'too_small':
      if (issue.origin === 'string' && Number(issue.minimum) === 1) return 'must not be empty';
      return `must be ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}${suffix(got)}`;
    case 'too_big':
      if (issue.origin === 'string') return `must be at most ${String(issue.maximum)} characters long`;
      return `must be ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}${suffix(got)}`;
    case 'invalid_value':
      return `must be ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}${suffix(got)}`;
    case 'unrecognized_keys':
      return `unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    default:
      return issue.message;
  }
}

function article(expected: string): string {
  if (expected === 'int') return 'an integer';
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

function suffix(got: unknown): string {
  return got === undefined ? '' : ` (got ${JSON.stringify(got)})`;
}

/** The CNI code an issue asks for, or `fallback`. */
function issueCode(issue: z.core.$ZodIssue, fallback: number): number {
  if (issue.code !== 'custom') return fallback;
  const code: unknown = issue.params?.[CNI_CODE_PARAM];
  return typeof code === 'number' ? code : fallback;
}

/**
 * The CniError for a failed parse: the first issue names the field and reason in `msg`; `details`
 * lists every issue when there are several. `what` says what was being validated ("network config", "CNI_ARGS").
 */
export function cniErrorFromZod(
  error: z.ZodError,
  what: string,
  fallbackCode: number = CniErrorCode.InvalidConfig,
): CniError {
  const describe = (issue: z.core.$ZodIssue) => `${fieldPath(issue.path)}: ${issueReason(issue)}`;
  const [first] = error.issues;
  const details = error.issues.length > 1 ? error.issues.map(describe).join('; ') : '';
  return new CniError(issueCode(first, fallbackCode), `invalid ${what}: ${describe(first)}`, details);
}

/** Parses `input` with `schema`, throwing a CniError that names the field on failure. */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
  fallbackCode: number = CniErrorCode.InvalidConfig,
): z.output<S> {
  const parsed = schema.safeParse(input, { reportInput: true });
  if (!parsed.success) throw cniErrorFromZod(parsed.error, what, fallbackCode);
  return parsed.data;
}
