/**
 * A token bucket that paces the frames a client sends under the server's budget (contract 3.2: 100
 * frames per minute per user, every frame that reaches `$default` counted; heartbeats have their own).
 * The default, a burst of 20 and 70 a minute after it, sends at most 90 in any minute: a burst of
 * quick edits waits a little instead of being refused, and a sync or a second tab has room left.
 */
/** How fast a client may send frames other than heartbeats. */
export interface Budget {
  /** Frames that may go at once after a quiet spell. */
  burst: number;
  /** Frames a minute once the burst is spent. */
  perMinute: number;
}

/** A burst of 20, then 70 a minute: at most 90 in any minute, under the server's 100. */
export const DEFAULT_BUDGET: Budget = { burst: 20, perMinute: 70 };

/** The bucket itself: `tryTake()` before a frame that may wait, `take()` before one that cannot. */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  private readonly perMs: number;

  constructor(
    private readonly budget: Budget,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.tokens = budget.burst;
    this.updatedAt = now();
    this.perMs = budget.perMinute / 60_000;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.budget.burst, this.tokens + (t - this.updatedAt) * this.perMs);
    this.updatedAt = t;
  }

  /** Take a token if one is there. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Take a token whether or not one is there (a frame that cannot wait, such as `sync`): later frames wait longer. */
  take(): void {
    this.refill();
    this.tokens -= 1;
  }

  /** Nothing may be sent for this long (the server said `rate_limited` with `retry_after_ms`). */
  pause(ms: number): void {
    this.refill();
    this.tokens = Math.min(this.tokens, 0) - ms * this.perMs;
  }

  /** Milliseconds until the next token. */
  waitMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) / this.perMs);
  }
}
