//! Errors: every failure the client reports is a `GatehouseError` carrying the server's stable
//! `code` (RFC 9457 problem+json, or the OAuth `{error}` format of `/oauth2/*`).

/** One field of a `validation_failed` answer. */
export interface FieldProblem {
  field: string;
  code: string;
  message: string;
}

/**
 * An error answered by Gatehouse (`status` ≥ 400), or one the client met on its own side
 * (`status` 0: `network_error`, `passkeys_unsupported`, `passkey_cancelled`, `not_signed_in`,
 * `oidc_state_mismatch`, ...). Branch on `code`, never on `message`.
 */
export class GatehouseError extends Error {
  /** Stable snake_case code: `invalid_credentials`, `validation_failed`, `rate_limited`, ... */
  readonly code: string;
  /** The HTTP status, or 0 when the request did not get an answer from Gatehouse. */
  readonly status: number;
  /** The problem's human-readable explanation, when the server gave one. */
  readonly detail: string | undefined;
  readonly title: string | undefined;
  readonly type: string | undefined;
  /** Per-field problems of a `validation_failed` answer. */
  readonly errors: FieldProblem[];
  /** Seconds to wait, from `Retry-After` (on `rate_limited`). */
  readonly retryAfter: number | undefined;

  constructor(init: {
    code: string;
    status: number;
    detail?: string | undefined;
    title?: string | undefined;
    type?: string | undefined;
    errors?: FieldProblem[] | undefined;
    retryAfter?: number | undefined;
    cause?: unknown;
  }) {
    super(init.detail ?? init.title ?? init.code, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'GatehouseError';
    this.code = init.code;
    this.status = init.status;
    this.detail = init.detail;
    this.title = init.title;
    this.type = init.type;
    this.errors = init.errors ?? [];
    this.retryAfter = init.retryAfter;
  }
}

/** Is `error` a `GatehouseError`, optionally with this `code`? */
export function isGatehouseError(error: unknown, code?: string): error is GatehouseError {
  return error instanceof GatehouseError && (code === undefined || error.code === code);
}

/** Reads an error answer into a `GatehouseError`, whatever its body turns out to be. */
export async function errorFromResponse(response: Response): Promise<GatehouseError> {
  const retryHeader = response.headers.get('retry-after');
  const retryAfter = retryHeader !== null && /^\d+$/.test(retryHeader) ? Number(retryHeader) : undefined;
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  if (body !== null && typeof body === 'object') {
    const problem = body as Record<string, unknown>;
    if (typeof problem.code === 'string') {
      return new GatehouseError({
        code: problem.code,
        status: response.status,
        detail: text(problem.detail),
        title: text(problem.title),
        type: text(problem.type),
        errors: Array.isArray(problem.errors) ? (problem.errors as FieldProblem[]) : [],
        retryAfter,
      });
    }
    // The OAuth endpoints answer in their RFCs' format.
    if (typeof problem.error === 'string') {
      return new GatehouseError({
        code: problem.error,
        status: response.status,
        detail: text(problem.error_description),
        retryAfter,
      });
    }
  }
  return new GatehouseError({
    code: `http_${response.status}`,
    status: response.status,
    detail: response.statusText || undefined,
    retryAfter,
  });
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
