/** How the manager refreshes: every setting, and its default. */
import { defaultAnswerLimitMillis, defaultManager } from "@effect-auth-manager/core/settings"
import { Duration } from "effect"

/** How the manager refreshes (`manager` in the options sets any of them). */
export interface Settings {
  /** When false, the provider needs no OpenAI credentials at all (getAuthStatus then answers requiresOpenaiAuth: false and no method). */
  readonly requiresOpenaiAuth: boolean
  /** An access token this close to its `exp` is stale. */
  readonly refreshWindow: Duration.Duration
  /** No second refresh of a snapshot refreshed this recently (also the clock-skew guard). */
  readonly minRefreshInterval: Duration.Duration
  /** Without an `exp`, a `last_refresh` older than this is stale. */
  readonly staleAfter: Duration.Duration
  readonly backoffBase: Duration.Duration
  readonly backoffCap: Duration.Duration
  /** The most of a server's `Retry-After` that is honoured. */
  readonly maxRetryAfter: Duration.Duration
  /**
   * How long callers wait for the token endpoint's answer. Past it they get a transient error, but
   * the request stays open (up to `answerLimit`): its answer may rotate the refresh token, so it is
   * still used and saved, and the same refresh token is not sent again meanwhile.
   */
  readonly refreshTimeout: Duration.Duration
  /** How long a token request stays open for its answer at most; then it is abandoned. */
  readonly answerLimit: Duration.Duration
  /**
   * How long closing the manager (SIGTERM, SIGINT) waits for a refresh in flight to finish and
   * be saved, since its answer may have rotated the refresh token: the refresh timeout and a margin.
   */
  readonly shutdownWait: Duration.Duration
  /**
   * How long closing the manager tries to save refreshed tokens not saved yet (Codex's lock held by
   * someone else); then they are kept beside the credentials for the next start (`AuthStore.keepPending`).
   */
  readonly shutdownSaveWait: Duration.Duration
  /** How long storage must be quiet after a change before it is reloaded. */
  readonly watchDebounce: Duration.Duration
}

/**
 * How long a token request stays open for its answer at most (5 minutes): past the refresh timeout
 * callers stop waiting, but an answer that comes later may carry a rotated refresh token.
 */
export const defaultAnswerLimit = Duration.millis(defaultAnswerLimitMillis)

/** The defaults of every setting (the core's, in milliseconds, as `Duration`s). */
export const defaultSettings: Settings = {
  requiresOpenaiAuth: defaultManager.requiresOpenaiAuth,
  refreshWindow: Duration.millis(defaultManager.refreshWindow),
  minRefreshInterval: Duration.millis(defaultManager.minRefreshInterval),
  staleAfter: Duration.millis(defaultManager.staleAfter),
  backoffBase: Duration.millis(defaultManager.backoffBase),
  backoffCap: Duration.millis(defaultManager.backoffCap),
  maxRetryAfter: Duration.millis(defaultManager.maxRetryAfter),
  watchDebounce: Duration.millis(defaultManager.watchDebounce),
  refreshTimeout: Duration.millis(defaultManager.refreshTimeout),
  answerLimit: defaultAnswerLimit,
  shutdownWait: Duration.millis(defaultManager.shutdownWait),
  shutdownSaveWait: Duration.millis(defaultManager.shutdownSaveWait)
}
