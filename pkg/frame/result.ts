// Untrusted input (datagrams, frames, IGMP/MLD) is parsed without throwing: every parser returns a
// Result whose error names the offending field. Exceptions are reserved for programming errors.

export type Result<T, E> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

export function err<E>(error: E): { readonly ok: false; readonly error: E } {
  return { ok: false, error };
}

/** A parse or validation failure: `code` is stable (counters key on it), `field` and `reason` are for humans. */
export interface FieldError<C extends string = string> {
  readonly code: C;
  readonly field: string;
  readonly reason: string;
}

export function fieldError<C extends string>(code: C, field: string, reason: string): FieldError<C> {
  return { code, field, reason };
}

export function formatFieldError(e: FieldError): string {
  return `${e.field}: ${e.reason} (${e.code})`;
}
