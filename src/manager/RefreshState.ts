/**
 * The refresh state machine as pure functions. A refresh is:
 * `decide` (before any I/O: skip, join, answer from the poison or the
 * cooldown, or start) → the lock → a read of storage → `plan` (adopt what
 * storage holds, answer from what another process learned, or request) →
 * the request → a compare-and-set, with `reconcile` when storage changed
 * meanwhile. The manager runs the I/O between these steps. Everything is
 * keyed by the snapshot hash, so adopting a new snapshot starts it healthy.
 */
import { type Deferred, Duration, Option, Redacted } from "effect"
import type { Settings } from "../config/Settings.js"
import * as AuthDocument from "../document/AuthDocument.js"
import type { AuthSnapshot } from "../document/AuthDocument.js"
import type { PendingRefresh } from "../document/AuthDocument.js"
import type { PermanentRefreshError, RefreshError } from "../errors/Errors.js"
import { TransientRefreshError } from "../errors/Errors.js"
import type { AuthState, AuthStatus } from "./AuthState.js"

// The manager's public types live in its public module; the state machine works on them.
export type { Settings } from "../config/Settings.js"
export type { AuthState } from "./AuthState.js"

export type Health =
  | { readonly _tag: "Healthy" }
  | { readonly _tag: "Poisoned"; readonly error: PermanentRefreshError }
  | {
    readonly _tag: "CoolingDown"
    readonly until: number
    readonly attempts: number
    readonly error: TransientRefreshError
  }

export interface Flight {
  readonly hash: string
  readonly done: Deferred.Deferred<void, RefreshError>
}

export interface State {
  readonly snapshot: AuthSnapshot
  readonly health: Health
  readonly inflight: Option.Option<Flight>
  /**
   * The hash storage is known to hold. It differs from the snapshot's only
   * when refreshed tokens could not be saved: the snapshot is then ahead of
   * storage, and storage still holding `stored` is nothing new.
   */
  readonly stored: string
  /** While refreshed tokens are unsaved: the refresh they came from (see `Pending`). */
  readonly pending: Option.Option<Pending>
}

/**
 * A refresh whose tokens are not saved yet: what it received, the refresh
 * token it replaced, and when. Storage that changes while it still holds the
 * replaced token gets these tokens applied onto it, never the other way round.
 */
export type Pending = PendingRefresh

const healthy: Health = { _tag: "Healthy" }

export const initial = (snapshot: AuthSnapshot): State => ({
  snapshot,
  health: healthy,
  inflight: Option.none(),
  stored: snapshot.hash,
  pending: Option.none()
})

export type Decision =
  | { readonly _tag: "Skip" }
  | { readonly _tag: "Poisoned"; readonly error: PermanentRefreshError }
  | { readonly _tag: "CoolingDown"; readonly error: TransientRefreshError }
  | { readonly _tag: "Join"; readonly flight: Flight }
  | { readonly _tag: "Start" }

const skip: Decision = { _tag: "Skip" }
const start: Decision = { _tag: "Start" }

const recentlyRefreshed = (snapshot: AuthSnapshot, now: number, settings: Settings): boolean =>
  Option.match(snapshot.lastRefreshAt, {
    onNone: () => false,
    onSome: (at) => now >= at && now - at < Duration.toMillis(settings.minRefreshInterval)
  })

/** What a refresh call does, before any I/O: skip, fail fast, join the flight, or start one. */
export const decide = (state: State, now: number, settings: Settings): Decision => {
  const { health, inflight, snapshot } = state
  if (snapshot.method !== "chatgpt") return skip
  if (health._tag === "Poisoned") return { _tag: "Poisoned", error: health.error }
  if (health._tag === "CoolingDown" && now < health.until) {
    return {
      _tag: "CoolingDown",
      error: new TransientRefreshError({
        kind: "cooldown",
        detail: `waiting before the next attempt, after: ${health.error.detail}`,
        retryAfter: Duration.millis(health.until - now)
      })
    }
  }
  if (recentlyRefreshed(snapshot, now, settings)) return skip
  if (Option.isSome(inflight) && inflight.value.hash === snapshot.hash) return { _tag: "Join", flight: inflight.value }
  return start
}

/**
 * The instant (epoch milliseconds) from which a poll refreshes without being asked: the access
 * token is about to expire. Fixed per snapshot, so a poll compares one number and reads no more.
 * `Infinity` when it never is (not ChatGPT), `-Infinity` when it always is (nothing to date it by).
 */
export const staleAt = (snapshot: AuthSnapshot, settings: Settings): number =>
  snapshot.method !== "chatgpt" ? Infinity : Option.match(snapshot.accessTokenExpiresAt, {
    onSome: (expiresAt) => expiresAt - Duration.toMillis(settings.refreshWindow),
    // Stale once strictly older than `staleAfter`: the next millisecond.
    onNone: () =>
      Option.match(snapshot.lastRefreshAt, {
        onNone: () => -Infinity,
        onSome: (at) => at + Duration.toMillis(settings.staleAfter) + 1
      })
  })

/** Whether a poll should refresh without being asked: the access token is about to expire. */
export const isStale = (snapshot: AuthSnapshot, now: number, settings: Settings): boolean =>
  now >= staleAt(snapshot, settings)

/**
 * Makes `snapshot`, read from storage, current. A different hash starts afresh; the same hash keeps
 * its state; what storage was already known to hold changes nothing (unsaved tokens stay current).
 * Unsaved refreshed tokens survive a change of storage that still holds the refresh token they
 * replaced (another program rewrote other fields): they are applied onto it, still to be saved.
 */
export const adopt = (snapshot: AuthSnapshot) => (state: State): State => {
  if (snapshot.hash === state.stored) return state
  const kept = Option.flatMap(state.pending, (pending) => applyOnto(snapshot, pending))
  return Option.isSome(kept)
    ? { ...state, snapshot: kept.value, health: healthy, stored: snapshot.hash }
    : adoptSaved(snapshot)(state)
}

/** `pending`'s tokens applied onto `stored`, if it still holds the refresh token they replaced. */
const applyOnto = (stored: AuthSnapshot, pending: Pending): Option.Option<AuthSnapshot> => {
  const reconciled = reconcile(stored, pending.replaced)
  return reconciled._tag === "Reapply"
    ? Option.some(
      AuthDocument.snapshot(AuthDocument.applyRefresh(reconciled.onto, pending.tokens, new Date(pending.at)))
    )
    : Option.none()
}

/**
 * The state of a process that finds, beside what storage holds (`stored`), a refresh another run
 * kept because it could not save it: its tokens applied onto `stored`, still to be saved; none when
 * `stored` no longer holds the refresh token it replaced (storage moved on: it is newer).
 */
export const resume = (stored: AuthSnapshot, pending: Pending): Option.Option<State> =>
  Option.map(applyOnto(stored, pending), (snapshot) => ({
    snapshot,
    health: healthy,
    inflight: Option.none(),
    stored: stored.hash,
    pending: Option.some(pending)
  }))

/**
 * Makes a kept refresh of what storage holds (`stored`, the base of the flight in progress) current,
 * still to be saved: `resume` while running. Unchanged when it does not apply.
 */
export const adoptKept = (stored: AuthSnapshot, pending: Pending) => (state: State): State =>
  Option.match(resume(stored, pending), {
    onNone: () => state,
    onSome: (resumed) => ({ ...resumed, inflight: state.inflight })
  })

/** Makes `snapshot`, just written to storage by this process, current. */
export const adoptSaved = (snapshot: AuthSnapshot) => (state: State): State =>
  state.snapshot.hash === snapshot.hash
    ? { ...state, stored: snapshot.hash, pending: Option.none() }
    : { ...state, snapshot, health: healthy, stored: snapshot.hash, pending: Option.none() }

/**
 * Makes `snapshot`, refreshed (`pending`) from what storage held (`base`) but
 * not saved, current: its tokens are served, and storage holding `base` is not news.
 */
export const adoptUnsaved = (snapshot: AuthSnapshot, base: string, pending: Pending) => (state: State): State => {
  if (state.stored === base) return { ...state, snapshot, health: healthy, pending: Option.some(pending) }
  // Storage moved on during the refresh, and the state with it: the refresh applies onto what it
  // holds only if that still holds the refresh token just replaced; anything else is newer.
  const kept = applyOnto(state.snapshot, pending)
  return Option.isSome(kept)
    ? { ...state, snapshot: kept.value, health: healthy, pending: Option.some(pending) }
    : state
}

/** Whether the current snapshot is ahead of storage (refreshed tokens waiting to be saved). */
export const unsaved = (state: State): boolean => state.stored !== state.snapshot.hash

/** Records what is known of snapshot `hash` (dead, backing off), if it is still the current one. */
export const withHealth = (hash: string, health: Health) => (state: State): State =>
  state.snapshot.hash === hash ? { ...state, health } : state

/**
 * Records a transient failure of snapshot `hash` at `now`. `jitter` in [0, 1)
 * spreads the delay over a tenth above its ceiling (`backoffDelay`); a
 * server's `Retry-After` is a floor, capped at `maxRetryAfter`.
 */
export const coolDown =
  (hash: string, error: TransientRefreshError, now: number, jitter: number, settings: Settings) =>
  (state: State): State => {
    const attempts = state.health._tag === "CoolingDown" ? state.health.attempts + 1 : 1
    const delay = backoffDelay(attempts, jitter, error.retryAfter, settings)
    return withHealth(hash, { _tag: "CoolingDown", until: now + delay, attempts, error })(state)
  }

/**
 * How many failures in a row are retried every `backoffBase` before the delays grow: most outages
 * are short, and a client waiting for a token should have one within about `backoffBase` of the
 * provider's return (about 10 requests in the first 10 s at the defaults).
 */
export const steadyAttempts = 10

/** How much longer each delay is than the one before, once the outage outlasts the steady retries. */
export const backoffGrowth = 1.2

/**
 * The delay ceiling after the `attempts`-th failure in a row, in milliseconds: `backoffBase` for
 * the first `steadyAttempts`, then 20% more each time up to `backoffCap`, so that the requests of
 * a long outage grow with the log of its length and the recovery takes about a fifth of it.
 */
export const backoffCeiling = (attempts: number, settings: Settings): number =>
  Math.min(
    Duration.toMillis(settings.backoffCap),
    Duration.toMillis(settings.backoffBase) * backoffGrowth ** Math.max(0, attempts - steadyAttempts)
  )

/**
 * The cooldown after the `attempts`-th failure in a row, in milliseconds: the ceiling, spread by
 * `jitter` over a tenth above it (never shorter, so the steady retries stay one per `backoffBase`),
 * and never over `backoffCap`. A `Retry-After` is a floor.
 */
export const backoffDelay = (
  attempts: number,
  jitter: number,
  retryAfter: Duration.Duration | undefined,
  settings: Settings
): number => {
  const spread = Math.min(
    Duration.toMillis(settings.backoffCap),
    Math.floor(backoffCeiling(attempts, settings) * (1 + jitter / 10))
  )
  const floor = retryAfter === undefined
    ? 0
    : Math.min(Duration.toMillis(retryAfter), Duration.toMillis(settings.maxRetryAfter))
  return Math.max(spread, floor)
}

export const endFlight = (flight: Flight) => (state: State): State =>
  Option.isSome(state.inflight) && state.inflight.value === flight ? { ...state, inflight: Option.none() } : state

/** What clients may see of the state: no secret in it. */
export const view = (state: State): AuthState => ({
  hash: state.snapshot.hash,
  method: state.snapshot.method,
  email: state.snapshot.claims.email,
  planType: state.snapshot.claims.planType,
  status: state.health._tag === "Poisoned"
    ? "poisoned"
    : state.health._tag === "CoolingDown"
    ? "cooling-down"
    : "healthy",
  reason: state.health._tag === "Poisoned" ? state.health.error.reason : null,
  retryAt: state.health._tag === "CoolingDown" ? state.health.until : null,
  lastRefreshAt: Option.getOrNull(state.snapshot.lastRefreshAt)
})

export const sameView = (a: AuthState, b: AuthState): boolean =>
  a.hash === b.hash && a.status === b.status && a.reason === b.reason && a.retryAt === b.retryAt

/** What a poll answers in `state`: the token only when asked for, never a poisoned one. */
export const statusOf = (state: State, includeToken: boolean): AuthStatus => {
  const { document, method } = state.snapshot
  const doc = Option.getOrUndefined(document)
  if (method === "apikey") {
    return {
      authMethod: method,
      authToken: includeToken ? doc?.OPENAI_API_KEY ?? null : null,
      requiresOpenaiAuth: true
    }
  }
  if (method === "chatgpt") {
    const withheld = !includeToken || state.health._tag === "Poisoned"
    return {
      authMethod: method,
      authToken: withheld ? null : doc?.tokens?.access_token ?? null,
      requiresOpenaiAuth: true
    }
  }
  return { authMethod: null, authToken: null, requiresOpenaiAuth: true }
}

/** What a refresh that holds the lock does, once it has read storage. */
export type Plan =
  /** Storage holds other credentials than those the refresh started from: they are adopted, no request. */
  | { readonly _tag: "Adopt"; readonly snapshot: AuthSnapshot }
  /** Another process already learned that this snapshot is dead, or is backing off: no request. */
  | { readonly _tag: "Known"; readonly health: Health; readonly error: PermanentRefreshError | TransientRefreshError }
  /** Nothing to send (no refresh token). */
  | { readonly _tag: "Nothing" }
  /**
   * The request, with the refresh token of `document`. `health` is what another process
   * recorded of this snapshot and no longer holds it back (a cooldown that has ended).
   */
  | {
    readonly _tag: "Request"
    readonly document: AuthDocument.AuthDocument
    readonly refreshToken: Redacted.Redacted<string>
    readonly health: Option.Option<Health>
  }

/**
 * After the lock and the read of storage: `current` is the snapshot being
 * refreshed, `base` the hash storage held when it was made (they differ only
 * while refreshed tokens are unsaved), `stored` what storage holds now and
 * `known` what another process recorded of `current`.
 */
export const plan = (
  state: State,
  read: {
    readonly current: AuthSnapshot
    readonly base: string
    readonly stored: AuthSnapshot
    readonly known: Option.Option<Health>
  },
  now: number,
  settings: Settings
): Plan => {
  const { base, current, known, stored } = read
  if (stored.hash !== base) return { _tag: "Adopt", snapshot: stored }
  if (Option.isSome(known)) {
    const decision = decide(withHealth(current.hash, known.value)(state), now, settings)
    if (decision._tag === "Poisoned" || decision._tag === "CoolingDown") {
      return { _tag: "Known", health: known.value, error: decision.error }
    }
  }
  const document = Option.getOrUndefined(current.document)
  const refreshToken = document?.tokens?.refresh_token
  if (document === undefined || refreshToken === undefined) return { _tag: "Nothing" }
  return { _tag: "Request", document, refreshToken, health: known }
}

/**
 * A compare-and-set of refreshed tokens found storage changed during the
 * request. If it still holds the refresh token that was sent (another program
 * rewrote other fields), the refresh is applied onto what it holds: otherwise
 * that token, already replaced at the provider, would be sent again. Anything
 * else in storage is newer than the refresh, and is adopted.
 */
export const reconcile = (
  held: AuthSnapshot,
  sent: Redacted.Redacted<string>
): { readonly _tag: "Reapply"; readonly onto: AuthDocument.AuthDocument } | { readonly _tag: "Adopt" } => {
  const document = Option.getOrUndefined(held.document)
  const token = document?.tokens?.refresh_token
  return document !== undefined && token !== undefined && Redacted.value(token) === Redacted.value(sent)
    ? { _tag: "Reapply", onto: document }
    : { _tag: "Adopt" }
}

/** A dead refresh token is recorded only if storage still holds what was refreshed (unreadable: it does). */
export const deathApplies = (latest: Option.Option<AuthSnapshot>, base: string): boolean =>
  Option.match(latest, { onNone: () => true, onSome: (snapshot) => snapshot.hash === base })
