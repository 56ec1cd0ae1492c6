/**
 * The refresh state machine (the core's, `@effect-auth-manager/core/refreshState`) over this
 * edition's snapshots, errors and settings. A refresh is: `decide` (before any I/O: skip, join,
 * answer from the poison or the cooldown, or start) → the lock → a read of storage → `plan` (adopt
 * what storage holds, answer from what another process learned, or request) → the request → a
 * compare-and-set, with `reconcile` when storage changed meanwhile. The manager runs the I/O
 * between these steps. Everything is keyed by the snapshot hash, so adopting a new snapshot starts
 * it healthy.
 */
import * as Core from "@effect-auth-manager/core/refreshState"
import { type Deferred, Duration, type Fiber, Option, Redacted } from "effect"
import type { Settings } from "../config/Settings.js"
import * as AuthDocument from "../document/AuthDocument.js"
import type { PermanentRefreshError, RefreshError } from "../errors/Errors.js"
import { TransientRefreshError } from "../errors/Errors.js"
import type { AuthState, AuthStatus } from "./AuthState.js"

// The manager's public types live in its public module; the state machine works on them.
export type { Settings } from "../config/Settings.js"
export type { AuthState } from "./AuthState.js"

export interface Flight {
  readonly hash: string
  /** The hash storage held when the flight started (what a newer write in storage differs from). */
  readonly base: string
  /** Its callers' answer. */
  readonly done: Deferred.Deferred<void, RefreshError>
  /**
   * Where it is: waiting for the refresh lock, running under it, or abandoned while waiting
   * because storage meanwhile gave newer credentials (see `Flight.abandonIfAdopted`).
   */
  readonly claim: {
    phase: "waiting" | "running" | "abandoned"
    fiber: Fiber.Fiber<unknown, unknown> | undefined
  }
}

/**
 * A refresh whose tokens are not saved yet: what it received, the refresh
 * token it replaced, and when. Storage that changes while it still holds the
 * replaced token gets these tokens applied onto it, never the other way round.
 */
export type Pending = AuthDocument.PendingRefresh

interface Types {
  readonly Snapshot: AuthDocument.AuthSnapshot
  readonly Secret: Redacted.Redacted<string>
  readonly Flight: Flight
  readonly Pending: Pending
  readonly Permanent: PermanentRefreshError
  readonly Transient: TransientRefreshError
  readonly Settings: Settings
}

export type Health = Core.Health<Types>
export type State = Core.State<Types>
export type Decision = Core.Decision<Types>
export type Plan = Core.Plan<Types>

/** The settings the machine reads, in milliseconds. */
export const timing = (settings: Settings): Core.Timing => ({
  refreshWindow: Duration.toMillis(settings.refreshWindow),
  minRefreshInterval: Duration.toMillis(settings.minRefreshInterval),
  staleAfter: Duration.toMillis(settings.staleAfter),
  backoffBase: Duration.toMillis(settings.backoffBase),
  backoffCap: Duration.toMillis(settings.backoffCap),
  maxRetryAfter: Duration.toMillis(settings.maxRetryAfter)
})

const machine = Core.make<Types>({
  timing,
  lastRefreshAt: (snapshot) => Option.getOrUndefined(snapshot.lastRefreshAt),
  accessTokenExpiresAt: (snapshot) => Option.getOrUndefined(snapshot.accessTokenExpiresAt),
  document: (snapshot) => Option.getOrUndefined(snapshot.document),
  reveal: Redacted.value,
  applied: (document, pending) =>
    AuthDocument.snapshot(AuthDocument.applyRefresh(document, pending.tokens, new Date(pending.at))),
  coolingDown: (error, retryAfter) =>
    new TransientRefreshError({
      kind: "cooldown",
      detail: `waiting before the next attempt, after: ${error.detail}`,
      retryAfter: Duration.millis(retryAfter)
    }),
  retryAfter: (error) => error.retryAfter === undefined ? undefined : Duration.toMillis(error.retryAfter)
})

export const {
  adopt,
  adoptKept,
  adoptSaved,
  adoptUnsaved,
  coolDown,
  deathApplies,
  decide,
  endFlight,
  holds,
  initial,
  isStale,
  plan,
  reconcile,
  resume,
  staleAt,
  withHealth
} = machine

export const { unsaved } = Core

/** What clients may see of the state: no secret in it. */
export const view: (state: State) => AuthState = machine.view

export const sameView: (a: AuthState, b: AuthState) => boolean = Core.sameView

/** What a poll answers in `state`: the token only when asked for, never a poisoned one. */
export const statusOf: (state: State, includeToken: boolean) => AuthStatus = machine.statusOf
