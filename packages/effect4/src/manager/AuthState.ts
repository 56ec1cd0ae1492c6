/**
 * What the manager tells its callers, with no secret in the open: the state
 * it emits on `changes`, the answers of `getAuthStatus` and `readAccount`, and
 * the credentials an API request carries (the token `Redacted`).
 */
import type { Duration, Redacted } from "effect"
import type * as AuthDocument from "../document/AuthDocument.js"
import type { PermanentReason } from "../errors/Errors.js"

/** What the manager knows of its credentials, with no secret in it: what `changes` emits. */
export interface AuthState {
  readonly hash: string
  readonly method: AuthDocument.AuthMethod | null
  readonly email: string | null
  readonly planType: string | null
  readonly status: "healthy" | "poisoned" | "cooling-down"
  readonly reason: PermanentReason | null
  /** While cooling down: when the next attempt may run, in epoch milliseconds. */
  readonly retryAt: number | null
  /** `last_refresh` of the snapshot, in epoch milliseconds. */
  readonly lastRefreshAt: number | null
}

/** The answer to `getAuthStatus` (the Codex app-server contract, with the token kept `Redacted`). */
export interface AuthStatus {
  readonly authMethod: AuthDocument.AuthMethod | null
  readonly authToken: Redacted.Redacted<string> | null
  readonly requiresOpenaiAuth: boolean
}

export interface AuthStatusParams {
  readonly includeToken?: boolean | undefined
  readonly refreshToken?: boolean | undefined
  /** Answer from what is held and never refresh, not even a stale token: a read, such as a status command. */
  readonly noRefresh?: boolean | undefined
}

/** The answer to `readAccount` (Codex app-server `account/read`). */
export interface AccountInfo {
  readonly account:
    | null
    | { readonly type: "apiKey" }
    | { readonly type: "chatgpt"; readonly email: string | null; readonly planType: string | null }
  readonly requiresOpenaiAuth: boolean
}

/** What a ChatGPT sign-in hands over. */
export interface ChatgptTokens {
  readonly idToken: Redacted.Redacted<string>
  readonly accessToken: Redacted.Redacted<string>
  readonly refreshToken: Redacted.Redacted<string>
  readonly accountId?: string | null | undefined
  /** How long the access token lives (`expires_in`), kept as `expires_at` so an opaque token goes stale on time. */
  readonly expiresIn?: Duration.Duration | undefined
}

/** What an API request carries: `Authorization: Bearer <token>`, and the ChatGPT account. */
export interface Credentials {
  readonly method: AuthDocument.AuthMethod
  /** The access token (ChatGPT) or the API key. */
  readonly token: Redacted.Redacted<string>
  /** The ChatGPT account the token acts for (the `ChatGPT-Account-Id` header); null for an API key. */
  readonly accountId: string | null
}

/**
 * What `reportUnauthorized` did about a refused token:
 * - "replaced": it was no longer current; retry with the current one (no request made);
 * - "reloaded": storage held newer credentials (another process refreshed or signed in);
 * - "refreshed": it was refreshed (or joined a refresh in flight);
 * - "unchanged": there is no other token to try (an API key, or a token a recovery just obtained).
 */
export type UnauthorizedRecovery = "replaced" | "reloaded" | "refreshed" | "unchanged"
