/**
 * The types of the refresh state machine (`refreshState`): what an edition
 * gives it (`Types`, `Edition`, `Timing`) and what it works on and answers.
 */
import type { AuthDocument, AuthMethod, IdTokenClaims } from "./authDocument.js"

/** The edition's types the machine works on. */
export interface Types {
  /** One version of the credentials, with its facts worked out (see `Edition` for the rest). */
  readonly Snapshot: { readonly hash: string; readonly method: AuthMethod | null; readonly claims: IdTokenClaims }
  /** A secret as the edition holds it (Redacted). */
  readonly Secret: unknown
  /** A refresh in progress: its snapshot's hash, and how callers wait for it. */
  readonly Flight: { readonly hash: string }
  /**
   * A refresh whose tokens are not saved yet: the refresh token it replaced, and when it was
   * answered (epoch milliseconds). Storage that changes while it still holds the replaced token
   * gets these tokens applied onto it, never the other way round.
   */
  readonly Pending: { readonly replaced: unknown; readonly at: number }
  /** The error of a dead refresh token. */
  readonly Permanent: { readonly reason: string }
  /** The error of a failure worth retrying later. */
  readonly Transient: unknown
  /** The manager's settings, as the edition holds them. */
  readonly Settings: unknown
}

/** The settings the machine reads, in milliseconds. */
export interface Timing {
  /** An access token this close to its `exp` is stale. */
  readonly refreshWindow: number
  /** No second refresh of a snapshot refreshed this recently (also the clock-skew guard). */
  readonly minRefreshInterval: number
  /** Without an `exp`, a `last_refresh` older than this is stale. */
  readonly staleAfter: number
  readonly backoffBase: number
  readonly backoffCap: number
  /** The most of a server's `Retry-After` that is honoured. */
  readonly maxRetryAfter: number
}

/** What the machine needs of an edition's values. */
export interface Edition<T extends Types> {
  readonly timing: (settings: T["Settings"]) => Timing
  readonly lastRefreshAt: (snapshot: T["Snapshot"]) => number | undefined
  /** The access token's expiry, epoch milliseconds. */
  readonly accessTokenExpiresAt: (snapshot: T["Snapshot"]) => number | undefined
  readonly document: (snapshot: T["Snapshot"]) => AuthDocument<T["Secret"]> | undefined
  readonly reveal: (secret: T["Secret"]) => string
  /** The snapshot of `document` with `pending`'s tokens applied, at `pending.at`. */
  readonly applied: (document: AuthDocument<T["Secret"]>, pending: T["Pending"]) => T["Snapshot"]
  /** The error a call gets while `error` cools the snapshot down, `retryAfter` milliseconds more. */
  readonly coolingDown: (error: T["Transient"], retryAfter: number) => T["Transient"]
  /** A server's `Retry-After` carried by `error`, in milliseconds. */
  readonly retryAfter: (error: T["Transient"]) => number | undefined
}

export type Health<T extends Types> =
  | { readonly _tag: "Healthy" }
  | { readonly _tag: "Poisoned"; readonly error: T["Permanent"] }
  | {
    readonly _tag: "CoolingDown"
    readonly until: number
    readonly attempts: number
    readonly error: T["Transient"]
  }

export interface State<T extends Types> {
  readonly snapshot: T["Snapshot"]
  readonly health: Health<T>
  readonly inflight: T["Flight"] | undefined
  /**
   * The hash storage is known to hold. It differs from the snapshot's only
   * when refreshed tokens could not be saved: the snapshot is then ahead of
   * storage, and storage still holding `stored` is nothing new.
   */
  readonly stored: string
  /** While refreshed tokens are unsaved: the refresh they came from. */
  readonly pending: T["Pending"] | undefined
}

export type Decision<T extends Types> =
  | { readonly _tag: "Skip" }
  | { readonly _tag: "Poisoned"; readonly error: T["Permanent"] }
  | { readonly _tag: "CoolingDown"; readonly error: T["Transient"] }
  | { readonly _tag: "Join"; readonly flight: T["Flight"] }
  | { readonly _tag: "Start" }

/** What a refresh that holds the lock does, once it has read storage. */
export type Plan<T extends Types> =
  /** Storage holds other credentials than those the refresh started from: they are adopted, no request. */
  | { readonly _tag: "Adopt"; readonly snapshot: T["Snapshot"] }
  /** Another process already learned that this snapshot is dead, or is backing off: no request. */
  | { readonly _tag: "Known"; readonly health: Health<T>; readonly error: T["Permanent"] | T["Transient"] }
  /** Nothing to send (no refresh token). */
  | { readonly _tag: "Nothing" }
  /**
   * The request, with the refresh token of `document`. `health` is what another process
   * recorded of this snapshot and no longer holds it back (a cooldown that has ended).
   */
  | {
    readonly _tag: "Request"
    readonly document: AuthDocument<T["Secret"]>
    readonly refreshToken: T["Secret"]
    readonly health: Health<T> | undefined
  }

/** What clients may see of the state: no secret in it. */
export interface View<T extends Types> {
  readonly hash: string
  readonly method: AuthMethod | null
  readonly email: string | null
  readonly planType: string | null
  readonly status: "healthy" | "poisoned" | "cooling-down"
  readonly reason: T["Permanent"]["reason"] | null
  /** When the cooldown ends, epoch milliseconds. */
  readonly retryAt: number | null
  readonly lastRefreshAt: number | null
}

/** What an API request can carry now, or why it carries nothing. */
export type Credentials<T extends Types> =
  | { readonly _tag: "LoggedOut" }
  | { readonly _tag: "Poisoned"; readonly reason: T["Permanent"]["reason"] }
  | {
    readonly _tag: "Credentials"
    readonly method: AuthMethod
    readonly token: T["Secret"]
    /** Codex sends the account id it saved with the tokens; the id_token's claim otherwise. */
    readonly accountId: string | null
  }

/** What a poll answers: the token only when asked for, never a poisoned one. */
export interface Status<T extends Types> {
  readonly authMethod: AuthMethod | null
  readonly authToken: T["Secret"] | null
  readonly requiresOpenaiAuth: boolean
}
