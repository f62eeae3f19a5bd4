/**
 * The one error type the client hands out: every refusal, from the server or from the client's own
 * checks, is a `CollabError` with a `code` a program can switch on.
 */
import type { ErrorBody, Task } from "./protocol.js";

/** The server's error codes (contract 3.3). */
export type ServerErrorCode = ErrorBody["code"];

/**
 * The server's codes plus the client's own:
 * - `timeout`: no answer within the mutation's deadline (the change stays queued and may still commit);
 * - `stopped`: the client was stopped with the change unsent;
 * - `network`: the HTTP API could not be reached.
 */
export type ErrorCode = ServerErrorCode | "timeout" | "stopped" | "network";

/** A refusal: `code` says which (switch on it), `message` says it for people. */
export class CollabError extends Error {
  /** What went wrong, for a program. */
  readonly code: ErrorCode;
  /** The field a `validation_error` is about, when known. */
  readonly field: string | null;
  /** How long the server asks the client to wait (`rate_limited`). */
  readonly retryAfterMs: number | null;
  /** The committed task a refusal carries (a `conflict` or a rolled-back change). */
  readonly task: Task | null;
  /** The HTTP status, for errors of the HTTP API; null for WebSocket refusals and the client's own. */
  readonly status: number | null;

  constructor(
    code: ErrorCode,
    message: string,
    extra: { field?: string | null; retryAfterMs?: number | null; task?: Task | null; status?: number | null } = {},
  ) {
    super(message);
    this.name = "CollabError";
    this.code = code;
    this.field = extra.field ?? null;
    this.retryAfterMs = extra.retryAfterMs ?? null;
    this.task = extra.task ?? null;
    this.status = extra.status ?? null;
  }

  /** A server's error body (an `ack` with `ok: false`, or an `error` frame). */
  static fromBody(body: ErrorBody): CollabError {
    return new CollabError(body.code, body.message, {
      field: body.field ?? null,
      retryAfterMs: body.retry_after_ms ?? null,
      task: body.task ?? null,
    });
  }
}

/** An error answer of the HTTP API (`{"error": {"code", "message"}}` with a 4xx/5xx status). */
export class HttpError extends CollabError {
  declare readonly status: number;

  constructor(status: number, code: ErrorCode, message: string, field: string | null = null, retryAfterMs: number | null = null) {
    super(code, message, { status, field, retryAfterMs });
    this.name = "HttpError";
  }
}
