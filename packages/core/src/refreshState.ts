/**
 * The refresh state machine as pure functions. A refresh is:
 * `decide` (before any I/O: skip, join, answer from the poison or the
 * cooldown, or start) → the lock → a read of storage → `plan` (adopt what
 * storage holds, answer from what another process learned, or request) →
 * the request → a compare-and-set, with `reconcile` when storage changed
 * meanwhile. An edition's manager runs the I/O between these steps.
 * Everything is keyed by the snapshot hash, so adopting a new snapshot
 * starts it healthy.
 *
 * What differs between editions (their snapshot with its Redacted secrets,
 * their errors, the flight's Deferred, their settings) is a type parameter
 * (`Types`) and a few functions (`Edition`); `make` builds the machine.
 */
import type { AuthDocument } from "./authDocument.js"
import type {
  Credentials,
  Decision,
  Edition,
  Health,
  Plan,
  State,
  Status,
  Timing,
  Types,
  View
} from "./refreshTypes.js"

export type {
  Credentials,
  Decision,
  Edition,
  Health,
  Plan,
  State,
  Status,
  Timing,
  Types,
  View
} from "./refreshTypes.js"

// ---------------------------------------------------------------------------
// Backoff (no edition types)
// ---------------------------------------------------------------------------

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
export const backoffCeiling = (attempts: number, timing: Timing): number =>
  Math.min(timing.backoffCap, timing.backoffBase * backoffGrowth ** Math.max(0, attempts - steadyAttempts))

/**
 * The cooldown after the `attempts`-th failure in a row, in milliseconds: the ceiling, spread by
 * `jitter` (in [0, 1)) over a tenth above it (never shorter, so the steady retries stay one per
 * `backoffBase`), and never over `backoffCap`. A `Retry-After` (milliseconds) is a floor, capped at
 * `maxRetryAfter`.
 */
export const backoffDelay = (attempts: number, jitter: number, retryAfter: number | undefined, timing: Timing) => {
  const spread = Math.min(timing.backoffCap, Math.floor(backoffCeiling(attempts, timing) * (1 + jitter / 10)))
  const floor = retryAfter === undefined ? 0 : Math.min(retryAfter, timing.maxRetryAfter)
  return Math.max(spread, floor)
}

/** Whether two views differ in what a client is told of a change. */
export const sameView = <T extends Types>(a: View<T>, b: View<T>): boolean =>
  a.hash === b.hash && a.status === b.status && a.reason === b.reason && a.retryAt === b.retryAt

/** Whether the current snapshot is ahead of storage (refreshed tokens waiting to be saved). */
export const unsaved = <T extends Types>(state: State<T>): boolean => state.stored !== state.snapshot.hash

// ---------------------------------------------------------------------------
// The machine
// ---------------------------------------------------------------------------

const healthy = { _tag: "Healthy" } as const

/** The settings' milliseconds, worked out once per settings object: they are read on every poll. */
const timingCache = <T extends Types>(edition: Edition<T>) => {
  const timings = new WeakMap<object, Timing>()
  const timingOf = (settings: T["Settings"]): Timing => {
    if (typeof settings !== "object" || settings === null) return edition.timing(settings)
    let timing = timings.get(settings)
    if (timing === undefined) timings.set(settings, timing = edition.timing(settings))
    return timing
  }
  return timingOf
}

/** Deciding: what a call does, when a snapshot is stale, what a refresh holding the lock does, what it records. */
const decisions = <T extends Types>(edition: Edition<T>, timingOf: (settings: T["Settings"]) => Timing) => {
  type S = State<T>
  const skip: Decision<T> = { _tag: "Skip" }
  const start: Decision<T> = { _tag: "Start" }

  const initial = (snapshot: T["Snapshot"]): S => ({
    snapshot,
    health: healthy,
    inflight: undefined,
    stored: snapshot.hash,
    pending: undefined
  })

  const recentlyRefreshed = (snapshot: T["Snapshot"], now: number, timing: Timing): boolean => {
    const at = edition.lastRefreshAt(snapshot)
    return at !== undefined && now >= at && now - at < timing.minRefreshInterval
  }

  /** What a refresh call does, before any I/O: skip, fail fast, join the flight, or start one. */
  const decide = (state: S, now: number, settings: T["Settings"]): Decision<T> => {
    const { health, inflight, snapshot } = state
    if (snapshot.method !== "chatgpt") return skip
    if (health._tag === "Poisoned") return { _tag: "Poisoned", error: health.error }
    if (health._tag === "CoolingDown" && now < health.until) {
      return { _tag: "CoolingDown", error: edition.coolingDown(health.error, health.until - now) }
    }
    if (recentlyRefreshed(snapshot, now, timingOf(settings))) return skip
    if (inflight !== undefined && inflight.hash === snapshot.hash) return { _tag: "Join", flight: inflight }
    return start
  }

  /**
   * The instant (epoch milliseconds) from which a poll refreshes without being asked: the access
   * token is about to expire. Fixed per snapshot, so a poll compares one number and reads no more.
   * `Infinity` when it never is (not ChatGPT), `-Infinity` when it always is (nothing to date it by).
   */
  const staleAt = (snapshot: T["Snapshot"], settings: T["Settings"]): number => {
    if (snapshot.method !== "chatgpt") return Infinity
    const timing = timingOf(settings)
    const expiresAt = edition.accessTokenExpiresAt(snapshot)
    if (expiresAt !== undefined) return expiresAt - timing.refreshWindow
    const at = edition.lastRefreshAt(snapshot)
    // Stale once strictly older than `staleAfter`: the next millisecond.
    return at === undefined ? -Infinity : at + timing.staleAfter + 1
  }

  /** Whether a poll should refresh without being asked: the access token is about to expire. */
  const isStale = (snapshot: T["Snapshot"], now: number, settings: T["Settings"]): boolean =>
    now >= staleAt(snapshot, settings)

  /** Records what is known of snapshot `hash` (dead, backing off), if it is still the current one. */
  const withHealth = (hash: string, health: Health<T>) => (state: S): S =>
    state.snapshot.hash === hash ? { ...state, health } : state

  /**
   * Records a transient failure of snapshot `hash` at `now`. `jitter` in [0, 1)
   * spreads the delay over a tenth above its ceiling (`backoffDelay`); a
   * server's `Retry-After` is a floor, capped at `maxRetryAfter`.
   */
  const coolDown =
    (hash: string, error: T["Transient"], now: number, jitter: number, settings: T["Settings"]) => (state: S): S => {
      const attempts = state.health._tag === "CoolingDown" ? state.health.attempts + 1 : 1
      const delay = backoffDelay(attempts, jitter, edition.retryAfter(error), timingOf(settings))
      return withHealth(hash, { _tag: "CoolingDown", until: now + delay, attempts, error })(state)
    }

  const endFlight = (flight: T["Flight"]) => (state: S): S =>
    state.inflight === flight ? { ...state, inflight: undefined } : state

  /**
   * After the lock and the read of storage: `current` is the snapshot being
   * refreshed, `base` the hash storage held when it was made (they differ only
   * while refreshed tokens are unsaved), `stored` what storage holds now and
   * `known` what another process recorded of `current`.
   */
  const plan = (
    state: S,
    read: {
      readonly current: T["Snapshot"]
      readonly base: string
      readonly stored: T["Snapshot"]
      readonly known: Health<T> | undefined
    },
    now: number,
    settings: T["Settings"]
  ): Plan<T> => {
    const { base, current, known, stored } = read
    if (stored.hash !== base) return { _tag: "Adopt", snapshot: stored }
    if (known !== undefined) {
      const decision = decide(withHealth(current.hash, known)(state), now, settings)
      if (decision._tag === "Poisoned" || decision._tag === "CoolingDown") {
        return { _tag: "Known", health: known, error: decision.error }
      }
    }
    const document = edition.document(current)
    const refreshToken = document?.tokens?.refresh_token
    if (document === undefined || refreshToken === undefined) return { _tag: "Nothing" }
    return { _tag: "Request", document, refreshToken, health: known }
  }

  /** A dead refresh token is recorded only if storage still holds what was refreshed (unreadable: it does). */
  const deathApplies = (latest: T["Snapshot"] | undefined, base: string): boolean =>
    latest === undefined || latest.hash === base

  return { initial, decide, staleAt, isStale, withHealth, coolDown, endFlight, plan, deathApplies }
}

/** Adopting what storage holds, and keeping refreshed tokens not saved yet. */
const adoptions = <T extends Types>(edition: Edition<T>) => {
  type S = State<T>

  /**
   * A compare-and-set of refreshed tokens found storage changed during the
   * request. If it still holds the refresh token that was sent (another program
   * rewrote other fields), the refresh is applied onto what it holds: otherwise
   * that token, already replaced at the provider, would be sent again. Anything
   * else in storage is newer than the refresh, and is adopted.
   */
  const reconcile = (
    held: T["Snapshot"],
    sent: T["Secret"]
  ): { readonly _tag: "Reapply"; readonly onto: AuthDocument<T["Secret"]> } | { readonly _tag: "Adopt" } => {
    const document = edition.document(held)
    const token = document?.tokens?.refresh_token
    return document !== undefined && token !== undefined && edition.reveal(token) === edition.reveal(sent)
      ? { _tag: "Reapply", onto: document }
      : { _tag: "Adopt" }
  }

  /** `pending`'s tokens applied onto `stored`, if it still holds the refresh token they replaced. */
  const applyOnto = (stored: T["Snapshot"], pending: T["Pending"]): T["Snapshot"] | undefined => {
    const reconciled = reconcile(stored, pending.replaced)
    return reconciled._tag === "Reapply" ? edition.applied(reconciled.onto, pending) : undefined
  }

  /** Makes `snapshot`, just written to storage by this process, current. */
  const adoptSaved = (snapshot: T["Snapshot"]) => (state: S): S =>
    state.snapshot.hash === snapshot.hash
      ? { ...state, stored: snapshot.hash, pending: undefined }
      : { ...state, snapshot, health: healthy, stored: snapshot.hash, pending: undefined }

  /**
   * Makes `snapshot`, read from storage, current. A different hash starts afresh; the same hash keeps
   * its state; what storage was already known to hold changes nothing (unsaved tokens stay current).
   * Unsaved refreshed tokens survive a change of storage that still holds the refresh token they
   * replaced (another program rewrote other fields): they are applied onto it, still to be saved.
   */
  const adopt = (snapshot: T["Snapshot"]) => (state: S): S => {
    if (snapshot.hash === state.stored) return state
    const kept = state.pending === undefined ? undefined : applyOnto(snapshot, state.pending)
    return kept !== undefined
      ? { ...state, snapshot: kept, health: healthy, stored: snapshot.hash }
      : adoptSaved(snapshot)(state)
  }

  /**
   * The state of a process that finds, beside what storage holds (`stored`), a refresh another run
   * kept because it could not save it: its tokens applied onto `stored`, still to be saved; undefined
   * when `stored` no longer holds the refresh token it replaced (storage moved on: it is newer).
   */
  const resume = (stored: T["Snapshot"], pending: T["Pending"]): S | undefined => {
    const snapshot = applyOnto(stored, pending)
    return snapshot === undefined
      ? undefined
      : { snapshot, health: healthy, inflight: undefined, stored: stored.hash, pending }
  }

  /**
   * Makes a kept refresh of what storage holds (`stored`, the base of the flight in progress) current,
   * still to be saved: `resume` while running. Unchanged when it does not apply.
   */
  const adoptKept = (stored: T["Snapshot"], pending: T["Pending"]) => (state: S): S => {
    const resumed = resume(stored, pending)
    return resumed === undefined ? state : { ...resumed, inflight: state.inflight }
  }

  /**
   * Makes `snapshot`, refreshed (`pending`) from what storage held (`base`) but
   * not saved, current: its tokens are served, and storage holding `base` is not news.
   */
  const adoptUnsaved = (snapshot: T["Snapshot"], base: string, pending: T["Pending"]) => (state: S): S => {
    if (state.stored === base) return { ...state, snapshot, health: healthy, pending }
    // Storage moved on during the refresh, and the state with it: the refresh applies onto what it
    // holds only if that still holds the refresh token just replaced; anything else is newer.
    const kept = applyOnto(state.snapshot, pending)
    return kept !== undefined ? { ...state, snapshot: kept, health: healthy, pending } : state
  }

  return { reconcile, adoptSaved, adopt, resume, adoptKept, adoptUnsaved }
}

/** What clients see of the state, and what a request carries. */
const answers = <T extends Types>(edition: Edition<T>) => {
  type S = State<T>

  /** What clients may see of the state: no secret in it. */
  const view = (state: S): View<T> => ({
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
    lastRefreshAt: edition.lastRefreshAt(state.snapshot) ?? null
  })

  /** What a poll answers in `state`: the token only when asked for, never a poisoned one. */
  const statusOf = (state: S, includeToken: boolean): Status<T> => {
    const { method } = state.snapshot
    const doc = edition.document(state.snapshot)
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

  /** The token a request would carry now: the API key, or the access token of credentials not poisoned. */
  const tokenOf = (state: S): T["Secret"] | undefined => {
    const doc = edition.document(state.snapshot)
    if (state.snapshot.method === "apikey") return doc?.OPENAI_API_KEY ?? undefined
    if (state.snapshot.method === "chatgpt" && state.health._tag !== "Poisoned") return doc?.tokens?.access_token
    return undefined
  }

  /** Whether `token` is the one a request would carry now (a 401 for any other one is already dealt with). */
  const holds = (state: S, token: T["Secret"]): boolean => {
    const current = tokenOf(state)
    return current !== undefined && edition.reveal(current) === edition.reveal(token)
  }

  /** The credentials for a request, or why there are none: logged out, or poisoned (and why). */
  const credentialsOf = (state: S): Credentials<T> => {
    const { method } = state.snapshot
    if (method === null) return { _tag: "LoggedOut" }
    if (state.health._tag === "Poisoned") return { _tag: "Poisoned", reason: state.health.error.reason }
    const token = tokenOf(state)
    if (token === undefined) return { _tag: "LoggedOut" }
    return {
      _tag: "Credentials",
      method,
      token,
      accountId: method === "chatgpt"
        ? edition.document(state.snapshot)?.tokens?.account_id ?? state.snapshot.claims.accountId
        : null
    }
  }

  return { view, statusOf, tokenOf, holds, credentialsOf }
}

/** The machine over an edition's types. */
export const make = <T extends Types>(edition: Edition<T>) => {
  const timingOf = timingCache(edition)
  return { ...decisions(edition, timingOf), ...adoptions(edition), ...answers(edition), timingOf }
}
