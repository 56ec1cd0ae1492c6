/**
 * The client-facing service: answers `getAuthStatus` and `readAccount` from
 * memory, refreshes the access token when needed (one request at a time,
 * with backoff), and never asks the token endpoint again about a refresh
 * token it already knows is dead.
 */
import {
  Clock,
  Context,
  Duration,
  Effect,
  ExecutionStrategy,
  Layer,
  Option,
  type Redacted,
  Ref,
  Scope,
  Stream,
  SubscriptionRef
} from "effect"
import * as Configuration from "../config/Configuration.js"
import { defaultAnswerLimit, defaultSettings, type Settings } from "../config/Settings.js"
import * as AuthDocument from "../document/AuthDocument.js"
import type { AuthStoreError, CredentialsUnavailableError, RefreshError } from "../errors/Errors.js"
import { TokenRefresher } from "../oauth/TokenRefresher.js"
import { AuthStore } from "../stores/AuthStore.js"
import type {
  AccountInfo,
  AuthState,
  AuthStatus,
  AuthStatusParams,
  ChatgptTokens,
  Credentials,
  UnauthorizedRecovery
} from "./AuthState.js"
import * as HostTokens from "./HostTokens.js"
import * as Accounts from "./internal/accounts.js"
import * as Answers from "./internal/answers.js"
import * as Flight from "./internal/flight.js"
import * as Persistence from "./internal/persistence.js"
import * as Recovery from "./internal/recovery.js"
import * as Unauthorized from "./internal/unauthorized.js"
import * as Watch from "./internal/watch.js"
import * as RefreshState from "./RefreshState.js"
import * as SharedState from "./SharedState.js"

export interface AuthManagerShape {
  /** Never fails: a failed refresh is absorbed, and a poisoned snapshot's token is withheld. */
  readonly getAuthStatus: (params?: AuthStatusParams) => Effect.Effect<AuthStatus>
  readonly readAccount: (params?: { readonly refreshToken?: boolean | undefined }) => Effect.Effect<AccountInfo>
  /** Refreshes the access token if it needs it: poisoned, cooling down, recently refreshed or in flight make no new request. */
  readonly refresh: Effect.Effect<void, RefreshError>
  readonly loginWithApiKey: (apiKey: Redacted.Redacted<string>) => Effect.Effect<AuthState, AuthStoreError>
  readonly loginWithTokens: (tokens: ChatgptTokens) => Effect.Effect<AuthState, AuthStoreError>
  readonly logout: Effect.Effect<AuthState, AuthStoreError>
  /** Reads storage again; different data is a new snapshot (poison and cooldown cleared). */
  readonly reload: Effect.Effect<AuthState, AuthStoreError>
  /** The credentials for an API request, refreshed first when stale; fails when there is no usable token. */
  readonly credentials: Effect.Effect<Credentials, CredentialsUnavailableError>
  /**
   * The API refused `token` (HTTP 401), so it may be revoked before its expiry. If it is
   * still current, storage is read again, then the token is refreshed once: single flight, the
   * minimum interval not applying, a permanent failure poisoning as everywhere. A token already
   * replaced causes no refresh. Succeeds when the caller may retry with `credentials` (unless "unchanged").
   */
  readonly reportUnauthorized: (token: Redacted.Redacted<string>) => Effect.Effect<UnauthorizedRecovery, RefreshError>
  /** The current state, without secrets. */
  readonly state: Effect.Effect<AuthState>
  /** The current state, then every change of snapshot or of its health. */
  readonly changes: Stream.Stream<AuthState>
  /**
   * Tokens a host app manages itself (memory only): while it has supplied some, they are the
   * `credentials`, and a refused one is refreshed by asking the host (see `HostTokens`).
   */
  readonly hostTokens: HostTokens.HostTokensShape
}

/**
 * The manager's settings in `configuration`: its timings (`manager`), and the
 * shutdown wait derived from the refresh timeout (the token request, then
 * Codex's 5 s commit lock and a margin for the save).
 */
export const settingsOf = (configuration: Configuration.Options): Partial<Settings> => ({
  refreshTimeout: configuration.refreshTimeout,
  answerLimit: Duration.max(defaultAnswerLimit, configuration.refreshTimeout),
  shutdownWait: Duration.sum(configuration.refreshTimeout, Duration.seconds(10)),
  ...configuration.manager
})

/** Builds the manager over the `AuthStore` and `TokenRefresher` in context. */
export const make = (
  options: Partial<Settings> = {}
): Effect.Effect<AuthManagerShape, never, AuthStore | TokenRefresher | Scope.Scope> => makeFrom(options, undefined)

/**
 * Builds the manager, starting from `state` when given instead of reading storage: how a keyed
 * manager hands a credential it held lightly (unsaved tokens included) to a full manager. Not
 * public.
 */
export const makeFrom = (
  options: Partial<Settings>,
  state: RefreshState.State | undefined
): Effect.Effect<AuthManagerShape, never, AuthStore | TokenRefresher | Scope.Scope> =>
  Effect.gen(function*() {
    const settings: Settings = { ...defaultSettings, ...options }
    const store = yield* AuthStore
    const refresher = yield* TokenRefresher
    const layerScope = yield* Effect.scope
    // Refresh flights (and save retries) run in a scope closed only after the finalizer below has
    // waited for the flight in progress: a refresh whose answer may have rotated the refresh token
    // finishes and is saved before the program stops (bounded by `shutdownWait`).
    const scope = yield* Scope.fork(layerScope, ExecutionStrategy.sequential)

    // A server must start even on an unreadable file: it reports logged out,
    // leaves the file alone, and a later sign-in keeps the old file aside.
    const first = state !== undefined ? state.snapshot : yield* store.load.pipe(
      Effect.catchTag(
        "AuthStoreError",
        (error) => Effect.logWarning(error.message).pipe(Effect.as(AuthDocument.absent))
      )
    )
    // A refresh an earlier run could not save, kept beside the credentials: adopted while they still
    // hold the refresh token it replaced (saved below), removed otherwise.
    const kept = state !== undefined || store.loadPending === undefined
      ? Option.none<RefreshState.Pending>()
      : yield* store.loadPending
    const resumed = Option.flatMap(kept, (pending) => Option.fromNullable(RefreshState.resume(first, pending)))
    // What another process already learned of these credentials (dead, backing off) applies from the
    // first poll: a poisoned snapshot's token is withheld here too, not only after a refresh attempt.
    const stateRef = yield* SubscriptionRef.make(
      state !== undefined
        ? { ...state, inflight: undefined }
        : Option.isSome(resumed)
        ? resumed.value
        : SharedState.initialState(first, yield* store.loadShared)
    )
    // The flight whose token request has been sent: its answer may rotate the refresh token. A flight
    // still waiting for a lock (another process may hold it for 40 s) or reading files is stopped at once.
    const requested = yield* Ref.make(Option.none<RefreshState.Flight>())
    // Serialises every change of storage made by this process with the adoption that follows it.
    const writes = yield* Effect.makeSemaphore(1)
    const persistence = yield* Persistence.make({ store, settings, stateRef, writes, scope })
    // When stopping, the flight whose request was sent is waited for, then what is unsaved is saved.
    yield* Scope.addFinalizer(layerScope, persistence.stopping(requested))

    const flight = Flight.make({ store, refresher, settings, stateRef, writes, scope, requested, persistence })
    const { getAuthStatus, readAccount } = yield* Answers.make({
      settings,
      stateRef,
      refreshQuietly: flight.refreshQuietly()
    })
    const accounts = Accounts.make({ store, stateRef, writes, removeAside: persistence.removeAside })

    yield* persistence.resumeKept(kept, resumed)
    // Handed over with tokens not saved yet: saving them goes on here.
    if (state !== undefined && RefreshState.unsaved(state)) yield* persistence.keepSaving(Duration.zero)
    yield* Watch.start(store, accounts.reload, settings, scope)

    const host = yield* HostTokens.make(scope)
    const reportUnauthorized = yield* Recovery.make({
      settings,
      stateRef,
      reload: accounts.reload,
      startFlight: flight.startFlight,
      host
    })

    const ownCredentials = Effect.gen(function*() {
      const before = yield* SubscriptionRef.get(stateRef)
      if (RefreshState.isStale(before.snapshot, yield* Clock.currentTimeMillis, settings)) {
        yield* flight.refreshQuietly()
      }
      return yield* Unauthorized.credentialsOf(yield* SubscriptionRef.get(stateRef))
    })
    // A host's tokens come first: the host signed in through this process and manages them.
    const credentials = Effect.flatMap(
      host.credentials,
      Option.match({ onNone: () => ownCredentials, onSome: Effect.succeed })
    )

    return AuthManager.of({
      getAuthStatus,
      readAccount,
      refresh: flight.refreshUntraced().pipe(Effect.withSpan("AuthManager.refresh")),
      loginWithApiKey: accounts.loginWithApiKey,
      loginWithTokens: accounts.loginWithTokens,
      logout: accounts.logout,
      reload: accounts.reload,
      credentials,
      reportUnauthorized,
      state: accounts.currentView,
      changes: stateRef.changes.pipe(
        Stream.map(RefreshState.view),
        Stream.changesWith(RefreshState.sameView)
      ),
      hostTokens: host.shape
    })
  })

/**
 * Keeps one user's credentials usable.
 *
 * @example
 * const status = Effect.flatMap(AuthManager, (auth) => auth.getAuthStatus({ includeToken: true, refreshToken: true }))
 */
export class AuthManager extends Context.Tag("effect-auth-manager/AuthManager")<AuthManager, AuthManagerShape>() {
  /** Builds a manager in a scope, with the given settings (the rest are the defaults): see `make`. */
  static readonly make = make

  /**
   * The manager, its settings from the `Configuration` in context (see `settingsOf`); needs an
   * `AuthStore` and a `TokenRefresher`.
   */
  static readonly layer: Layer.Layer<AuthManager, never, Configuration.Configuration | AuthStore | TokenRefresher> =
    Layer
      .scoped(
        AuthManager,
        Effect.flatMap(Configuration.Configuration, (configuration) => make(settingsOf(configuration)))
      )
}
