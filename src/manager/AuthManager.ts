/**
 * The client-facing service: answers `getAuthStatus` and `readAccount` from
 * memory, refreshes the access token when needed (one request at a time,
 * with backoff), and never asks the token endpoint again about a refresh
 * token it already knows is dead.
 */
import {
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  ExecutionStrategy,
  Fiber,
  FiberRef,
  Layer,
  Metric,
  Option,
  Random,
  Redacted,
  Ref,
  Schedule,
  Scope,
  Stream,
  SubscriptionRef
} from "effect"
import * as Configuration from "../config/Configuration.js"
import { defaultSettings, type Settings } from "../config/Configuration.js"
import * as AuthDocument from "../document/AuthDocument.js"
import {
  AuthStoreError,
  type CredentialsUnavailableError,
  type PermanentRefreshError,
  type RefreshError,
  TransientRefreshError
} from "../errors/Errors.js"
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
import * as Unauthorized from "./internal/unauthorized.js"
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

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })
const refreshAttempts = counter(
  "effect_auth_refresh_attempts_total",
  "Refreshes that ran (or found newer credentials in storage), by outcome"
)
const poisonHits = counter(
  "effect_auth_poison_hits_total",
  "Refresh calls answered from the poison record, with no request"
)
const cooldownHits = counter(
  "effect_auth_cooldown_hits_total",
  "Refresh calls answered during a backoff, with no request"
)
const joinedCallers = counter(
  "effect_auth_refresh_joined_total",
  "Refresh calls that joined a refresh already in flight"
)
const countAttempt = (outcome: "success" | "permanent" | "transient" | "adopted" | "shared") =>
  Metric.increment(Metric.tagged(refreshAttempts, "outcome", outcome))
const unauthorizedRecoveries = counter(
  "effect_auth_unauthorized_recoveries_total",
  "Tokens an API refused (HTTP 401), by what recovery did: replaced, reloaded, refreshed, unchanged, poisoned, failed"
)
const countRecovery = (outcome: UnauthorizedRecovery | "poisoned" | "failed") =>
  Metric.increment(Metric.tagged(unauthorizedRecoveries, "outcome", outcome))

/**
 * What a poll needs of one state, computed once per state: clients poll many times a second
 * and the state changes rarely, so a poll answered from memory allocates nothing.
 */
interface Answers {
  readonly state: RefreshState.State
  readonly chatgpt: boolean
  readonly poisoned: boolean
  /** From this instant a poll refreshes without being asked (`RefreshState.staleAt`). */
  readonly staleAt: number
  readonly withToken: Effect.Effect<AuthStatus>
  readonly withoutToken: Effect.Effect<AuthStatus>
  /** The answer to a refresh of a poisoned snapshot, counted as a poison hit. */
  readonly poisonHit: (includeToken: boolean) => Effect.Effect<AuthStatus>
}

// `Metric.increment` in one step instead of three, keeping the fiber's metric labels.
const counted = (counter: typeof poisonHits, answer: Effect.Effect<AuthStatus>) =>
  Effect.withFiberRuntime<AuthStatus>((fiber) => {
    counter.unsafeUpdate(1, fiber.getFiberRef(FiberRef.currentMetricLabels))
    return answer
  })

const answersOf = (state: RefreshState.State, settings: Settings): Answers => {
  const withToken = Effect.succeed(RefreshState.statusOf(state, true))
  const withoutToken = Effect.succeed(RefreshState.statusOf(state, false))
  const poisonHitWithToken = counted(poisonHits, withToken)
  const poisonHitWithoutToken = counted(poisonHits, withoutToken)
  return {
    state,
    chatgpt: state.snapshot.method === "chatgpt",
    poisoned: state.health._tag === "Poisoned",
    staleAt: RefreshState.staleAt(state.snapshot, settings),
    withToken,
    withoutToken,
    poisonHit: (includeToken) => includeToken ? poisonHitWithToken : poisonHitWithoutToken
  }
}

const accountOf = (snapshot: AuthDocument.AuthSnapshot): AccountInfo["account"] =>
  snapshot.method === "apikey"
    ? { type: "apiKey" }
    : snapshot.method === "chatgpt"
    ? { type: "chatgpt", email: snapshot.claims.email, planType: snapshot.claims.planType }
    : null

/**
 * The manager's settings in `configuration`: its timings (`manager`), and the
 * shutdown wait derived from the refresh timeout (the token request, then
 * Codex's 5 s commit lock and a margin for the save).
 */
export const settingsOf = (configuration: Configuration.Options): Partial<Settings> => ({
  refreshTimeout: configuration.refreshTimeout,
  answerLimit: Duration.max(Configuration.defaultAnswerLimit, configuration.refreshTimeout),
  shutdownWait: Duration.sum(configuration.refreshTimeout, Duration.seconds(10)),
  ...configuration.manager
})

/** Builds the manager over the `AuthStore` and `TokenRefresher` in context. */
export const make = (
  options: Partial<Settings> = {}
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
    const first = yield* store.load.pipe(
      Effect.catchTag(
        "AuthStoreError",
        (error) => Effect.logWarning(error.message).pipe(Effect.as(AuthDocument.absent))
      )
    )
    // A refresh an earlier run could not save, kept beside the credentials: adopted while they still
    // hold the refresh token it replaced (saved below), removed otherwise.
    const kept = store.loadPending === undefined ? Option.none<RefreshState.Pending>() : yield* store.loadPending
    const resumed = Option.flatMap(kept, (pending) => RefreshState.resume(first, pending))
    // What another process already learned of these credentials (dead, backing off) applies from the
    // first poll: a poisoned snapshot's token is withheld here too, not only after a refresh attempt.
    const stateRef = yield* SubscriptionRef.make(
      Option.isSome(resumed) ? resumed.value : SharedState.initialState(first, yield* store.loadShared)
    )
    const update = (f: (state: RefreshState.State) => RefreshState.State) => SubscriptionRef.update(stateRef, f)
    // The flight whose token request has been sent: its answer may rotate the refresh token. A flight
    // still waiting for a lock (another process may hold it for 40 s) or reading files is stopped at once.
    const requested = yield* Ref.make(Option.none<RefreshState.Flight>())
    // Set below, once saving is defined: run when stopping, after the flight in progress is done.
    let saveBeforeStopping: Effect.Effect<void> = Effect.void
    // Its callers may have stopped waiting (`refreshTimeout`): the flight ends when its answer is saved.
    const flightEnded = (flight: RefreshState.Flight) =>
      stateRef.changes.pipe(
        Stream.takeUntil((state) => !Option.exists(state.inflight, (f) => f === flight)),
        Stream.runDrain
      )
    // A finalizer runs uninterruptibly: each wait in it is made interruptible, or its bound would not hold.
    yield* Scope.addFinalizer(
      layerScope,
      Effect.flatMap(Effect.zip(SubscriptionRef.get(stateRef), Ref.get(requested)), ([state, sent]) =>
        Option.match(
          Option.filter(state.inflight, (flight) => Option.contains(sent, flight)),
          {
            onNone: () => Effect.void,
            onSome: (flight) =>
              Effect.logInfo("Stopping: waiting for the refresh in flight to finish and be saved").pipe(
                Effect.zipRight(
                  Effect.interruptible(flightEnded(flight)).pipe(Effect.timeoutOption(settings.shutdownWait))
                ),
                Effect.flatMap(Option.match({
                  onNone: () => Effect.logWarning("Stopping without the refresh in flight: it did not finish in time"),
                  onSome: () => Effect.logDebug("The refresh in flight is done")
                }))
              )
          }
        )).pipe(Effect.zipRight(Effect.suspend(() => saveBeforeStopping)))
    )
    // Serialises every change of storage made by this process with the adoption that follows it.
    const writes = yield* Effect.makeSemaphore(1)
    const currentView = Effect.map(SubscriptionRef.get(stateRef), RefreshState.view)

    // Tells the other processes sharing the credentials what this one learned about snapshot `hash`.
    const share = (hash: string, now: number) =>
      Effect.flatMap(SubscriptionRef.get(stateRef), (state) =>
        state.snapshot.hash === hash ? store.saveShared(SharedState.fromHealth(hash, state.health, now)) : Effect.void)

    // `shared`: a failure of this process's storage is its own; the others are not told to wait.
    const recordTransient = Effect.fnUntraced(function*(hash: string, error: TransientRefreshError, now: number) {
      yield* update(RefreshState.coolDown(hash, error, now, yield* Random.next, settings))
      if (error.kind !== "storage") {
        yield* share(hash, now)
      }
      yield* countAttempt("transient")
      yield* Effect.logWarning("Token refresh failed for now; backing off").pipe(
        Effect.annotateLogs({ kind: error.kind, detail: error.detail, status: error.status ?? null })
      )
      return yield* Effect.fail(error)
    })

    const recordPermanent = Effect.fnUntraced(function*(hash: string, error: PermanentRefreshError, now: number) {
      yield* update(RefreshState.withHealth(hash, { _tag: "Poisoned", error }))
      yield* share(hash, now)
      yield* countAttempt("permanent")
      yield* Effect.logWarning("Refresh token is dead; this snapshot makes no more requests until sign-in").pipe(
        Effect.annotateLogs({ reason: error.reason, status: error.status ?? null })
      )
      return yield* Effect.fail(error)
    })

    // Refreshed tokens that could not be saved stay current (served, and the next refresh sends their
    // refresh token, never the old one); saving them is retried with backoff until storage takes them
    // or someone else writes it.
    const saveRetries = yield* Ref.make(false)
    // The fiber of the retries, stopped when the manager stops (interrupting one that ended does nothing).
    const saver = yield* Ref.make(Option.none<Fiber.RuntimeFiber<unknown, unknown>>())
    const unsavedWarned = yield* Ref.make(false)
    // Why the last save failed (a lock held by another program, a read-only folder): said when stopping.
    const lastSaveProblem = yield* Ref.make("")
    // The pending refresh kept beside the credentials (`AuthStore.keepPending`), when the store has a
    // place for it: written as soon as refreshed tokens cannot be saved, so that not even a crash loses
    // them, and removed once they are saved. `aside` is what it holds now.
    const aside = yield* Ref.make(Option.none<RefreshState.Pending>())
    const keepAside = Effect.gen(function*() {
      const { pending } = yield* SubscriptionRef.get(stateRef)
      if (store.keepPending === undefined || Option.isNone(pending)) {
        return false
      }
      if (
        Option.exists(yield* Ref.get(aside), (written) =>
          written === pending.value)
      ) {
        return true
      }
      return yield* store.keepPending(pending).pipe(
        Effect.zipRight(Ref.set(aside, pending)),
        Effect.as(true),
        Effect.catchAll((error) =>
          Effect.as(
            Effect.logWarning("Refreshed tokens could not be kept beside the credentials either").pipe(
              Effect.annotateLogs({ file: error.path, problem: error.problem })
            ),
            false
          )
        )
      )
    })
    // `always`: whoever wrote it (a sign-in or sign-out replaces what any kept refresh was for).
    const removeAside = (always: boolean) =>
      Effect.gen(function*() {
        if (store.keepPending === undefined || (!always && Option.isNone(yield* Ref.get(aside)))) {
          return
        }
        yield* store.keepPending(Option.none()).pipe(
          Effect.zipRight(Ref.set(aside, Option.none())),
          Effect.catchAll((error) =>
            Effect.logWarning("A kept copy of refreshed tokens could not be removed").pipe(
              Effect.annotateLogs({ file: error.path, problem: error.problem })
            )
          )
        )
      })
    const clearAside = removeAside(false)
    const saveRetrySchedule = Schedule.exponential(settings.backoffBase).pipe(
      Schedule.union(Schedule.spaced(settings.backoffCap)),
      Schedule.jittered
    )
    // Saves unsaved refreshed tokens against what storage is known to hold. If it changed, `adopt`
    // applies them onto what it holds while it still holds the refresh token they replaced, and the
    // save is tried again (a few times at most: then it is retried later); anything else in storage
    // is newer than the refresh, and is used instead.
    const maxReapply = 5
    const saveUnsavedHolding = Effect.gen(function*() {
      for (let reapplied = 0; reapplied <= maxReapply; reapplied++) {
        const state = yield* SubscriptionRef.get(stateRef)
        if (!RefreshState.unsaved(state)) {
          return "saved" as const
        }
        const result = yield* store.compareAndSet(state.stored, state.snapshot.document)
        if (result._tag === "Written") {
          yield* update(RefreshState.adoptSaved(result.snapshot))
          return "saved" as const
        }
        yield* update(RefreshState.adopt(result.current))
        if (!RefreshState.unsaved(yield* SubscriptionRef.get(stateRef))) {
          return "superseded" as const
        }
      }
      return yield* new AuthStoreError({
        path: store.location,
        operation: "write",
        problem: "storage kept changing during the save"
      })
    })
    const saveUnsaved = writes.withPermits(1)(Effect.tap(saveUnsavedHolding, () =>
      clearAside)).pipe(
        Effect.flatMap((outcome) =>
          outcome === "saved"
            ? Effect.logInfo("Refreshed tokens that could not be saved before are saved now")
            : Effect.logWarning(
              "The credentials changed in storage before refreshed tokens could be saved: using the stored ones"
            )
        )
      )
    // Tokens still unsaved when the manager stops would be lost with it, and the next start would send
    // the refresh token in storage, already replaced. The retries in the background stop; one last
    // try, short (whoever holds the lock has held it for seconds already); then they are kept beside
    // the credentials for the next start, and that is said in one line.
    saveBeforeStopping = Effect.gen(function*() {
      if (!RefreshState.unsaved(yield* SubscriptionRef.get(stateRef))) return
      yield* Effect.flatMap(Ref.get(saver), Option.match({ onNone: () => Effect.void, onSome: Fiber.interrupt }))
      const saved = yield* Effect.interruptible(saveUnsaved).pipe(
        Effect.timeoutFail({
          duration: settings.shutdownSaveWait,
          onTimeout: () =>
            new AuthStoreError({
              path: store.location,
              operation: "lock",
              problem: `not saved within ${Duration.format(settings.shutdownSaveWait)} while stopping`
            })
        }),
        Effect.either
      )
      if (Either.isRight(saved)) return
      const problem = (yield* Ref.get(lastSaveProblem)) || saved.left.problem
      if (yield* keepAside) {
        return yield* Effect.logError(
          "Stopping before refreshed tokens could be saved: they are kept beside the credentials, and the next start with this store adopts and saves them"
        ).pipe(Effect.annotateLogs({ kept: store.pendingLocation ?? store.location, problem }))
      }
      yield* Effect.logError(
        "Stopping with refreshed tokens that could not be saved or kept: signing in again may be needed"
      ).pipe(Effect.annotateLogs({ file: store.location, problem }))
    })
    const keepSaving = (delay: Duration.Duration) =>
      Effect.gen(function*() {
        if (yield* Ref.getAndSet(saveRetries, true)) return
        const fiber = yield* Effect.sleep(delay).pipe(
          Effect.zipRight(saveUnsaved),
          Effect.tapError((error) =>
            Effect.zipRight(
              Ref.set(lastSaveProblem, error.problem),
              Effect.logDebug("Saving the refreshed tokens failed again").pipe(
                Effect.annotateLogs({ problem: error.problem })
              )
            )
          ),
          Effect.retry(saveRetrySchedule),
          Effect.interruptible,
          Effect.ensuring(Ref.set(saveRetries, false)),
          Effect.forkIn(scope)
        )
        yield* Ref.set(saver, Option.some(fiber))
      }).pipe(Effect.uninterruptible)
    const keepUnsaved = Effect.fnUntraced(function*(error: AuthStoreError) {
      yield* Ref.set(lastSaveProblem, error.problem)
      if (!(yield* Ref.getAndSet(unsavedWarned, true))) {
        yield* Effect.logWarning(
          "Refreshed tokens could not be saved: they are used from memory, and saving is retried"
        ).pipe(
          Effect.annotateLogs({ file: error.path, problem: error.problem })
        )
      }
      yield* keepAside
      yield* keepSaving(settings.backoffBase)
    })

    // The outcome of the request: a refresh token the provider declared dead is recorded only if
    // storage still holds what was refreshed; a transient failure backs off.
    const recordFailure = (current: AuthDocument.AuthSnapshot, base: string, error: RefreshError, now: number) => {
      if (error._tag === "TransientRefreshError") return recordTransient(current.hash, error, now)
      if (error._tag !== "PermanentRefreshError") return Effect.fail(error)
      return writes.withPermits(1)(Effect.gen(function*() {
        const latest = yield* Effect.option(store.load)
        if (!RefreshState.deathApplies(latest, base)) {
          yield* countAttempt("adopted")
          return yield* update(RefreshState.adopt(Option.getOrThrow(latest)))
        }
        return yield* recordPermanent(current.hash, error, now)
      }))
    }

    // The compare-and-set of the refreshed tokens: written only if storage still holds what was
    // refreshed (under Codex's lock). If it changed meanwhile, the tokens become unsaved over what
    // it held, and `saveUnsavedHolding` applies them onto what it holds now, or gives way to it.
    const commit = (
      base: string,
      request: Extract<RefreshState.Plan, { readonly _tag: "Request" }>,
      tokens: AuthDocument.RefreshedTokens,
      now: number
    ) =>
      writes.withPermits(1)(Effect.gen(function*() {
        yield* countAttempt("success")
        const pending: RefreshState.Pending = { tokens, replaced: request.refreshToken, at: now }
        const next = AuthDocument.snapshot(AuthDocument.applyRefresh(request.document, tokens, new Date(now)))
        const written = yield* Effect.either(store.compareAndSet(base, next.document))
        // Not written: from here on the refreshed tokens are served from memory until they are saved.
        if (Either.isLeft(written)) {
          yield* update(RefreshState.adoptUnsaved(next, base, pending))
          return yield* keepUnsaved(written.left)
        }
        const result = written.right
        if (result._tag === "Written") {
          yield* store.saveShared(Option.none())
          yield* Effect.logDebug("Access token refreshed and saved").pipe(
            Effect.annotateLogs({ snapshot: result.snapshot.hash.slice(0, 12) })
          )
          yield* update(RefreshState.adoptSaved(result.snapshot))
          return yield* clearAside
        }
        yield* update(RefreshState.adoptUnsaved(next, base, pending))
        yield* update(RefreshState.adopt(result.current))
        const saved = yield* Effect.either(saveUnsavedHolding)
        if (Either.isLeft(saved)) return yield* keepUnsaved(saved.left)
        yield* clearAside
        if (saved.right === "superseded") {
          yield* Effect.logDebug("Storage changed during the refresh: what it holds is adopted, the result dropped")
        }
      }))

    // The pending refresh kept beside the credentials, if it replaced `refreshToken` (what `stored` holds).
    const keptFor = (stored: AuthDocument.AuthSnapshot, refreshToken: Redacted.Redacted<string>) =>
      store.loadPending === undefined ? Effect.succeedNone : Effect.map(
        store.loadPending,
        Option.filter((pending) =>
          Redacted.value(pending.replaced) === Redacted.value(refreshToken) &&
          Option.isSome(RefreshState.resume(stored, pending))
        )
      )

    // The token request runs on its own fiber: callers stop waiting after `refreshTimeout`, the request
    // does not. Its answer, however late (up to `answerLimit`), may carry a rotated refresh token: it
    // is still committed. Until then the flight stays open, holding the refresh lock and joined by
    // later callers, so the same refresh token is not sent again meanwhile, here or elsewhere.
    const answerOf = Effect.fnUntraced(function*(
      refreshToken: Redacted.Redacted<string>,
      flight: RefreshState.Flight,
      hash: string
    ) {
      // One timer at a time: the request is bounded by `answerLimit` only once it is late.
      const request = yield* Effect.fork(Effect.either(refresher.refresh(refreshToken)))
      const inTime = yield* Effect.timeoutOption(Fiber.join(request), settings.refreshTimeout)
      if (Option.isSome(inTime)) return inTime.value
      const error = new TransientRefreshError({
        kind: "timeout",
        detail: `the token endpoint did not answer within ${
          Duration.format(settings.refreshTimeout)
        }; its answer is still awaited`
      })
      yield* update(RefreshState.coolDown(hash, error, yield* Clock.currentTimeMillis, yield* Random.next, settings))
      yield* Deferred.fail(flight.done, error)
      yield* Effect.logWarning(
        "The token endpoint has not answered in time: callers get an error, and the request stays open for its answer"
      ).pipe(
        Effect.annotateLogs({
          waited: Duration.format(settings.refreshTimeout),
          limit: Duration.format(settings.answerLimit)
        })
      )
      const late = yield* Effect.timeoutOption(
        Fiber.join(request),
        Duration.subtract(settings.answerLimit, settings.refreshTimeout)
      )
      if (Option.isSome(late)) return late.value
      yield* Fiber.interrupt(request)
      return Either.left(
        new TransientRefreshError({
          kind: "timeout",
          detail: `the token endpoint did not answer within ${
            Duration.format(settings.answerLimit)
          }: the request was abandoned`
        })
      )
    })

    // The refresh proper, run detached from the callers that asked, under the store's
    // refresh lock (among all the processes sharing the credentials, one at a time): read what
    // storage holds, `plan` (adopt it, answer from what another process learned, or request),
    // then the request and the compare-and-set. `base` is the hash storage held when `current`
    // was made (they differ while unsaved).
    const attempt = (current: AuthDocument.AuthSnapshot, base: string, flight: RefreshState.Flight) =>
      store.withRefreshLock(Effect.gen(function*() {
        const stored = yield* store.load
        const known = stored.hash !== base
          ? Option.none<RefreshState.Health>()
          : Option.flatMap(yield* store.loadShared, (shared) => SharedState.toHealth(shared, current.hash))
        const next = RefreshState.plan(
          yield* SubscriptionRef.get(stateRef),
          { current, base, stored, known },
          yield* Clock.currentTimeMillis,
          settings
        )
        switch (next._tag) {
          case "Adopt":
            yield* Effect.logDebug("Storage holds newer credentials: adopted with no request")
            yield* countAttempt("adopted")
            return yield* update(RefreshState.adopt(next.snapshot))
          case "Known":
            yield* update(RefreshState.withHealth(current.hash, next.health))
            yield* Effect.logDebug("Another process already knows this snapshot's state: no request").pipe(
              Effect.annotateLogs({ state: next.health._tag })
            )
            yield* countAttempt("shared")
            return yield* Effect.fail(next.error)
          case "Nothing":
            return
          case "Request": {
            if (Option.isSome(next.health)) yield* update(RefreshState.withHealth(current.hash, next.health.value))
            // Another run (stopped, or alive beside this one) may have kept a refresh of this very
            // token that it could not save: its tokens are taken, and the replaced token is not sent.
            const kept = yield* keptFor(stored, next.refreshToken)
            if (Option.isSome(kept)) {
              yield* Effect.logInfo("Adopted refreshed tokens another run kept but could not save; saving them")
              yield* countAttempt("adopted")
              yield* update(RefreshState.adoptKept(stored, kept.value))
              yield* Ref.set(aside, kept)
              return yield* keepSaving(Duration.zero)
            }
            yield* Effect.logDebug("Refreshing the access token").pipe(
              Effect.annotateLogs({ snapshot: current.hash.slice(0, 12) })
            )
            yield* Ref.set(requested, Option.some(flight))
            const outcome = yield* answerOf(next.refreshToken, flight, current.hash)
            const now = yield* Clock.currentTimeMillis
            return yield* Either.match(outcome, {
              onLeft: (error) => recordFailure(current, base, error, now),
              onRight: (tokens) => commit(base, next, tokens, now)
            })
          }
        }
      })).pipe(
        // The store failed before any request (lock, read): said, and backed off, as any passing trouble.
        Effect.catchTag("AuthStoreError", (error) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            recordTransient(
              current.hash,
              new TransientRefreshError({
                kind: "storage",
                detail: `could not ${error.operation} ${error.path}: ${error.problem}`
              }),
              now
            )))
      )

    type Claim =
      | Exclude<RefreshState.Decision, { readonly _tag: "Start" }>
      | {
        readonly _tag: "Started"
        readonly flight: RefreshState.Flight
        readonly snapshot: AuthDocument.AuthSnapshot
        readonly base: string
      }

    // `decide` is the usual one of a refresh, or the forced one of a 401 recovery.
    const startFlight = (decide: (state: RefreshState.State, now: number) => RefreshState.Decision) =>
      Effect.uninterruptible(Effect.gen(function*() {
        const done = yield* Deferred.make<void, RefreshError>()
        const now = yield* Clock.currentTimeMillis
        const decision = yield* SubscriptionRef.modify(stateRef, (state): readonly [Claim, RefreshState.State] => {
          const next = decide(state, now)
          if (next._tag !== "Start") return [next, state]
          const flight: RefreshState.Flight = { hash: state.snapshot.hash, done }
          return [{ _tag: "Started", flight, snapshot: state.snapshot, base: state.stored }, {
            ...state,
            inflight: Option.some(flight)
          }]
        })
        if (decision._tag === "Started") {
          // Forked from an uninterruptible region, the flight would inherit it, and its own
          // timeouts could never interrupt a request that hangs: the attempt is made interruptible.
          yield* attempt(decision.snapshot, decision.base, decision.flight).pipe(
            Effect.withSpan("AuthManager.refreshFlight", {
              attributes: { snapshot: decision.snapshot.hash.slice(0, 12) }
            }),
            Effect.interruptible,
            Effect.exit,
            Effect.flatMap((exit) => Deferred.done(done, exit)),
            Effect.ensuring(update(RefreshState.endFlight(decision.flight))),
            Effect.forkIn(scope)
          )
        }
        return decision
      }))

    const decideNow = (state: RefreshState.State, now: number) => RefreshState.decide(state, now, settings)

    const refreshUntraced = Effect.fnUntraced(function*() {
      const now = yield* Clock.currentTimeMillis
      const first = RefreshState.decide(yield* SubscriptionRef.get(stateRef), now, settings)
      const decision: Claim = first._tag === "Start" ? yield* startFlight(decideNow) : first
      switch (decision._tag) {
        case "Skip":
          return
        case "Poisoned":
          yield* Metric.increment(poisonHits)
          return yield* Effect.fail(decision.error)
        case "CoolingDown":
          yield* Metric.increment(cooldownHits)
          return yield* Effect.fail(decision.error)
        case "Join":
          yield* Metric.increment(joinedCallers)
          return yield* Deferred.await(decision.flight.done)
        case "Started":
          return yield* Deferred.await(decision.flight.done)
      }
    })

    // The outcome is already recorded in the state (and logged once) by the flight.
    // A bug in a refresh (a defect) must not fail a poll either, since a poll never fails because of a refresh: it is logged, by its name only.
    const refreshQuietly = Effect.ignore(
      refreshUntraced().pipe(
        Effect.catchAllDefect((defect) =>
          Effect.logError("A refresh failed unexpectedly").pipe(
            Effect.annotateLogs({ defect: defect instanceof Error ? defect.name : typeof defect })
          )
        )
      )
    )

    // Polls are not spans: a span costs about four times a poll answered from memory, and clients
    // poll many times a second. Every poll that does work joins or starts a flight, which is one.
    // A poll answered from memory is one state read: the answers are cached per state, and the
    // clock the layer was built with is read directly (no Effect step) against the snapshot's
    // precomputed stale instant.
    const clock = yield* Effect.clock
    let cached = answersOf(yield* SubscriptionRef.get(stateRef), settings)
    const answers = (state: RefreshState.State): Answers =>
      cached.state === state ? cached : (cached = answersOf(state, settings))
    const pick = (includeToken: boolean) => (answer: Answers) => includeToken ? answer.withToken : answer.withoutToken
    const poll = (includeToken: boolean, refreshToken: boolean, proactive = true): Effect.Effect<AuthStatus> => {
      const reply = pick(includeToken)
      const afterRefresh = Effect.zipRight(
        refreshQuietly,
        Effect.flatMap(SubscriptionRef.get(stateRef), (state) => reply(answers(state)))
      )
      return Effect.flatMap(SubscriptionRef.get(stateRef), (state) => {
        const answer = answers(state)
        if (!answer.chatgpt) return reply(answer)
        const wantsRefresh = refreshToken || (proactive && clock.unsafeCurrentTimeMillis() >= answer.staleAt)
        if (!wantsRefresh) return reply(answer)
        // A refresh of a poisoned snapshot is answered from the poison record, with no request.
        if (answer.poisoned) return answer.poisonHit(includeToken)
        return afterRefresh
      })
    }
    const notRequired = Effect.succeed<AuthStatus>({ authMethod: null, authToken: null, requiresOpenaiAuth: false })
    // Built once: a poll only picks one of these.
    const plain = poll(false, false)
    const refreshing = poll(false, true)
    const withToken = poll(true, false)
    const withTokenRefreshing = poll(true, true)
    const readOnly = poll(false, false, false)
    const readOnlyWithToken = poll(true, false, false)
    const getAuthStatus = (params?: AuthStatusParams): Effect.Effect<AuthStatus> =>
      !settings.requiresOpenaiAuth
        ? notRequired
        : params?.noRefresh === true
        ? params.includeToken === true ? readOnlyWithToken : readOnly
        : params?.includeToken === true
        ? params.refreshToken === true ? withTokenRefreshing : withToken
        : params?.refreshToken === true
        ? refreshing
        : plain

    const readAccount = Effect.fnUntraced(function*(
      params: { readonly refreshToken?: boolean | undefined } = {}
    ) {
      if (!settings.requiresOpenaiAuth) return { account: null, requiresOpenaiAuth: false }
      if (params.refreshToken === true) yield* refreshQuietly
      return { account: accountOf((yield* SubscriptionRef.get(stateRef)).snapshot), requiresOpenaiAuth: true }
    })

    // Writes storage through `write`, given what it holds now, and adopts the result. A refresh in
    // flight anywhere cannot write over it: its compare-and-swap finds the file changed.
    const replace = (
      write: (
        stored: Option.Option<AuthDocument.AuthDocument>
      ) => Effect.Effect<AuthDocument.AuthSnapshot, AuthStoreError>
    ) =>
      writes.withPermits(1)(Effect.gen(function*() {
        const stored = yield* store.load.pipe(
          Effect.map((snapshot) => snapshot.document),
          Effect.orElseSucceed(() => Option.none())
        )
        yield* update(RefreshState.adoptSaved(yield* write(stored)))
        // A kept refresh of the credentials just replaced is of no use now, and holds tokens.
        yield* removeAside(true)
        return yield* currentView
      }))

    const loginWithApiKey = Effect.fn("AuthManager.loginWithApiKey")((apiKey: Redacted.Redacted<string>) =>
      replace((stored) => store.save(AuthDocument.withApiKey(stored, apiKey)))
    )

    const loginWithTokens = Effect.fn("AuthManager.loginWithTokens")(function*(tokens: ChatgptTokens) {
      const now = new Date(yield* Clock.currentTimeMillis)
      return yield* replace((stored) =>
        store.save(AuthDocument.withTokens(
          stored,
          {
            id_token: tokens.idToken,
            access_token: tokens.accessToken,
            refresh_token: tokens.refreshToken,
            ...(tokens.accountId === undefined ? {} : { account_id: tokens.accountId })
          },
          now,
          tokens.expiresIn
        ))
      )
    })

    const logout = replace(() => Effect.as(store.remove, AuthDocument.absent)).pipe(
      Effect.withSpan("AuthManager.logout")
    )

    const reload = writes.withPermits(1)(Effect.gen(function*() {
      yield* update(RefreshState.adopt(yield* store.load))
      return yield* currentView
    })).pipe(Effect.withSpan("AuthManager.reload"))

    // A refresh an earlier run kept: saved now if it applied, removed if the credentials moved on since.
    if (Option.isSome(kept)) {
      const file = store.pendingLocation ?? store.location
      if (Option.isSome(resumed)) {
        yield* Ref.set(aside, kept)
        yield* Effect.logInfo("Adopted refreshed tokens an earlier run kept but could not save; saving them").pipe(
          Effect.annotateLogs({ file })
        )
        yield* keepSaving(Duration.zero)
      } else {
        yield* removeAside(true)
        yield* Effect.logInfo("Removed a kept refresh that no longer applies: the credentials changed since").pipe(
          Effect.annotateLogs({ file })
        )
      }
    }

    // Another process changed the credentials: adopt them (a different hash clears poison and cooldown).
    yield* store.changed.pipe(
      Stream.debounce(settings.watchDebounce),
      // Nothing a reload meets (a bad file, a defect) may end the watch.
      Stream.runForEach(() =>
        reload.pipe(
          Effect.catchTag("AuthStoreError", (error) => Effect.logWarning(error.message)),
          Effect.catchAllDefect((defect) =>
            Effect.logWarning("Reloading the credentials failed; the watch goes on").pipe(
              Effect.annotateLogs({ problem: defect instanceof Error ? defect.name : "defect" })
            )
          )
        )
      ),
      Effect.forkIn(scope)
    )

    // The API's 401 is evidence the token is dead, so the minimum interval does not
    // apply; but a token that a recovery has just obtained and that is refused again is not
    // refreshed again inside that interval, or an API refusing every token would drive a refresh
    // per request.
    const forcedSettings: Settings = { ...settings, minRefreshInterval: Duration.zero }
    const justRecovered = yield* Ref.make(
      Option.none<{ readonly hash: string; readonly at: number; readonly warned: boolean }>()
    )

    const recover = Effect.fnUntraced(function*(rejected: Redacted.Redacted<string>) {
      const before = yield* SubscriptionRef.get(stateRef)
      if (before.health._tag === "Poisoned") return yield* Effect.fail(before.health.error)
      if (!Unauthorized.holds(before, rejected)) return "replaced" as const
      if (!Option.exists(before.inflight, (flight) => flight.hash === before.snapshot.hash)) {
        // Another process may have refreshed already: a file read, no request.
        yield* reload
        const current = yield* SubscriptionRef.get(stateRef)
        if (!Unauthorized.holds(current, rejected)) return "reloaded" as const
        const now = yield* Clock.currentTimeMillis
        const recent = Option.exists(yield* Ref.get(justRecovered), (last) =>
          last.hash === current.snapshot.hash && now - last.at < Duration.toMillis(settings.minRefreshInterval))
        if (recent) {
          // Once per token: an API that refuses every token would otherwise log every request.
          const first = yield* Ref.modify(justRecovered, (last) =>
            Option.exists(last, (l) =>
                !l.warned)
              ? [true, Option.map(last, (l) => ({ ...l, warned: true }))] as const
              : [false, last] as const)
          if (first) {
            yield* Effect.logWarning(
              "The API refused a token just obtained by a 401 recovery: not refreshing it again yet"
            )
          }
          return "unchanged" as const
        }
      }
      const decision = yield* startFlight((state, now) =>
        Unauthorized.holds(state, rejected) ? RefreshState.decide(state, now, forcedSettings) : { _tag: "Skip" }
      )
      switch (decision._tag) {
        case "Poisoned":
        case "CoolingDown":
          return yield* Effect.fail(decision.error)
        case "Join":
          yield* Metric.increment(joinedCallers)
          yield* Deferred.await(decision.flight.done)
          break
        case "Started":
          yield* Deferred.await(decision.flight.done)
          break
      }
      const after = yield* SubscriptionRef.get(stateRef)
      if (Unauthorized.holds(after, rejected)) {
        return "unchanged" as const
      }
      if (decision._tag === "Skip") {
        return "replaced" as const
      }
      if (decision._tag === "Started") {
        yield* Ref.set(
          justRecovered,
          Option.some({ hash: after.snapshot.hash, at: yield* Clock.currentTimeMillis, warned: false })
        )
      }
      return "refreshed" as const
    })

    const reportUnauthorized = Effect.fn("AuthManager.reportUnauthorized")(
      (rejected: Redacted.Redacted<string>) =>
        Effect.flatMap(
          host.recover(rejected),
          Option.match({
            onNone: () =>
              recover(rejected),
            onSome: Effect.succeed
          })
        ).pipe(
          Effect.tap((outcome) => Effect.annotateCurrentSpan("outcome", outcome)),
          Effect.tapBoth({
            onSuccess: countRecovery,
            onFailure: (error) => countRecovery(error._tag === "PermanentRefreshError" ? "poisoned" : "failed")
          })
        )
    )

    const host = yield* HostTokens.make(scope)

    const ownCredentials = Effect.gen(function*() {
      const before = yield* SubscriptionRef.get(stateRef)
      if (RefreshState.isStale(before.snapshot, yield* Clock.currentTimeMillis, settings)) yield* refreshQuietly
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
      refresh: refreshUntraced().pipe(Effect.withSpan("AuthManager.refresh")),
      loginWithApiKey,
      loginWithTokens,
      logout,
      reload,
      credentials,
      reportUnauthorized,
      state: currentView,
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
