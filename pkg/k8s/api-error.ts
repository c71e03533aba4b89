// Failed Kubernetes API calls as errors that say what was attempted and why it failed. client-node's
// ApiException carries the HTTP status and the apiserver's Status as a JSON string, and its message
// is several lines with the response headers; its watch fails with only the status line.
import { ApiException } from '@kubernetes/client-node';
import { errorMessage } from '../base/errors.js';

/** A 422 Invalid's details.causes: each names the offending field. */
export interface StatusCause {
  field?: string;
  message?: string;
}

/** What the apiserver said (its metav1.Status), or the HTTP status alone when it said nothing. */
export interface ApiStatus {
  code: number;
  reason: string;
  message: string;
  causes: StatusCause[];
}

export class KubernetesApiError extends Error {
  constructor(
    /** What was attempted, e.g. `apply MembershipReport node-1`. */
    readonly what: string,
    readonly status: ApiStatus,
    options?: ErrorOptions,
  ) {
    super(`${what}: ${status.code} ${status.reason}${status.message ? `: ${status.message}` : ''}`, options);
  }
}

interface StatusBody {
  reason?: unknown;
  message?: unknown;
  details?: { causes?: unknown };
}

function parseStatus(body: unknown): StatusBody {
  if (typeof body === 'string') {
    try {
      return parseStatus(JSON.parse(body));
    } catch {
      return { message: body.slice(0, 500) };
    }
  }
  return body && typeof body === 'object' ? (body as StatusBody) : {};
}

/** The API status of an error thrown by a client-node call or watch; undefined for other errors. */
export function apiStatus(err: unknown): ApiStatus | undefined {
  if (err instanceof KubernetesApiError) return err.status;
  if (err instanceof ApiException) {
    const st = parseStatus(err.body);
    const code = Number(err.code);
    return {
      code,
      reason: typeof st.reason === 'string' ? st.reason : String(code),
      message: typeof st.message === 'string' ? st.message : '',
      causes: Array.isArray(st.details?.causes) ? (st.details.causes as StatusCause[]) : [],
    };
  }
  // client-node's Watch rejects a non-200 response with Error(statusText) and its statusCode.
  const code = (err as { statusCode?: unknown } | undefined)?.statusCode;
  if (err instanceof Error && typeof code === 'number') {
    return { code, reason: err.message, message: '', causes: [] };
  }
  return undefined;
}

/** `err` as an error that starts with `what`; an API failure keeps its status. */
export function describeApiError(what: string, err: unknown): Error {
  const status = apiStatus(err);
  if (status) return new KubernetesApiError(what, status, { cause: err });
  return new Error(`${what}: ${errorMessage(err)}`, { cause: err });
}

/** Runs one API call; a failure is rethrown as an error naming `what` and the apiserver's reason. */
export async function apiCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw describeApiError(what, err);
  }
}

export const isNotFound = (err: unknown): boolean => apiStatus(err)?.code === 404;
export const isConflict = (err: unknown): boolean => apiStatus(err)?.code === 409;
