/**
 * The single flight of a refresh: decide, then, detached from the callers, under the store's
 * refresh lock, read storage, plan, request and compare-and-set; a late answer is still awaited
 * and committed. Callers join the flight in progress.
 */
import {
  Cause,
  Clock,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Option,
  Random,
  type Redacted,
  Ref,
  Result,
  type Scope,
  type Semaphore,
  SubscriptionRef
} from "effect"
import type { Settings } from "../../config/Settings.js"
import type * as AuthDocument from "../../document/AuthDocument.js"
import { type PermanentRefreshError, type RefreshError, TransientRefreshError } from "../../errors/Errors.js"
import type { TokenRefresherShape } from "../../oauth/TokenRefresher.js"
import type { AuthStoreShape } from "../../stores/AuthStore.js"
import { forkInOrElse } from "../../util/forkIn.js"
import * as RefreshState from "../RefreshState.js"
import * as SharedState from "../SharedState.js"
import { cooldownHits, countAttempt, increment, joinedCallers, poisonHits } from "./metrics.js"
import type { Persistence } from "./persistence.js"

/** What the flight needs of the manager. */
export interface Dependencies {
  readonly store: AuthStoreShape
  readonly refresher: TokenRefresherShape
  readonly settings: Settings
  readonly stateRef: SubscriptionRef.SubscriptionRef<RefreshState.State>
  readonly writes: Semaphore.Semaphore
  /** Where flights run, closed only after the flight in progress is waited for. */
  readonly scope: Scope.Scope
  /** The flight whose token request has been sent: its answer may rotate the refresh token. */
  readonly requested: Ref.Ref<Option.Option<RefreshState.Flight>>
  readonly persistence: Persistence
}

export type Claim =
  | Exclude<RefreshState.Decision, { readonly _tag: "Start" }>
  | {
    readonly _tag: "Started"
    readonly flight: RefreshState.Flight
    readonly snapshot: AuthDocument.AuthSnapshot
    readonly base: string
  }

const update = (
  stateRef: SubscriptionRef.SubscriptionRef<RefreshState.State>,
  f: (state: RefreshState.State) => RefreshState.State
) => SubscriptionRef.update(stateRef, f)

// How a failed request is recorded: a dead refresh token poisons the snapshot, a passing trouble backs off.
const recordsOf = ({ settings, stateRef, store, writes }: Dependencies) => {
  // Tells the other processes sharing the credentials what this one learned about snapshot `hash`.
  const share = (hash: string, now: number) =>
    Effect.flatMap(
      SubscriptionRef.get(stateRef),
      (state) =>
        state.snapshot.hash === hash ? store.saveShared(SharedState.fromHealth(hash, state.health, now)) : Effect.void
    )

  // A failure of this process's storage is its own: the others are not told to wait.
  const recordTransient = Effect.fnUntraced(function*(hash: string, error: TransientRefreshError, now: number) {
    yield* update(stateRef, RefreshState.coolDown(hash, error, now, yield* Random.next, settings))
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
    yield* update(stateRef, RefreshState.withHealth(hash, { _tag: "Poisoned", error }))
    yield* share(hash, now)
    yield* countAttempt("permanent")
    yield* Effect.logWarning("Refresh token is dead; this snapshot makes no more requests until sign-in").pipe(
      Effect.annotateLogs({ reason: error.reason, status: error.status ?? null })
    )
    return yield* Effect.fail(error)
  })

  // The outcome of the request: a refresh token the provider declared dead is recorded only if
  // storage still holds what was refreshed; a transient failure backs off.
  const recordFailure = (
    current: AuthDocument.AuthSnapshot,
    base: string,
    error: RefreshError,
    now: number
  ): Effect.Effect<void, RefreshError> => {
    if (error._tag === "TransientRefreshError") return recordTransient(current.hash, error, now)
    if (error._tag !== "PermanentRefreshError") return Effect.fail(error)
    return writes.withPermits(1)(Effect.gen(function*() {
      const latest = Option.getOrUndefined(yield* Effect.option(store.load))
      if (latest !== undefined && !RefreshState.deathApplies(latest, base)) {
        yield* countAttempt("adopted")
        return yield* update(stateRef, RefreshState.adopt(latest))
      }
      return yield* recordPermanent(current.hash, error, now)
    }))
  }
  return { recordTransient, recordFailure }
}

const timedOut = (detail: string) => new TransientRefreshError({ kind: "timeout", detail })

// The token request runs on its own fiber: callers stop waiting after `refreshTimeout`, the request
// does not. Its answer, however late (up to `answerLimit`), may carry a rotated refresh token: it
// is still committed. Until then the flight stays open, holding the refresh lock and joined by
// later callers, so the same refresh token is not sent again meanwhile, here or elsewhere.
const answerOf = ({ refresher, settings, stateRef }: Dependencies) =>
  Effect.fnUntraced(function*(
    refreshToken: Redacted.Redacted<string>,
    flight: RefreshState.Flight,
    hash: string
  ) {
    // One timer at a time: the request is bounded by `answerLimit` only once it is late.
    const request = yield* Effect.forkChild(Effect.result(refresher.refresh(refreshToken)))
    const inTime = yield* Effect.timeoutOption(Fiber.join(request), settings.refreshTimeout)
    if (Option.isSome(inTime)) return inTime.value
    const error = timedOut(
      `the token endpoint did not answer within ${
        Duration.format(settings.refreshTimeout)
      }; its answer is still awaited`
    )
    yield* update(
      stateRef,
      RefreshState.coolDown(hash, error, yield* Clock.currentTimeMillis, yield* Random.next, settings)
    )
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
    return Result.fail(
      timedOut(
        `the token endpoint did not answer within ${Duration.format(settings.answerLimit)}: the request was abandoned`
      )
    )
  })

// What `plan` said to do, once the lock is held and storage read (`stored`).
const carryOutOf = (dependencies: Dependencies) => {
  const { persistence, requested, stateRef } = dependencies
  const { recordFailure } = recordsOf(dependencies)
  const answer = answerOf(dependencies)
  return Effect.fnUntraced(function*(
    next: RefreshState.Plan,
    current: AuthDocument.AuthSnapshot,
    base: string,
    stored: AuthDocument.AuthSnapshot,
    flight: RefreshState.Flight
  ) {
    switch (next._tag) {
      case "Adopt":
        yield* Effect.logDebug("Storage holds newer credentials: adopted with no request")
        yield* countAttempt("adopted")
        return yield* update(stateRef, RefreshState.adopt(next.snapshot))
      case "Known":
        yield* update(stateRef, RefreshState.withHealth(current.hash, next.health))
        yield* Effect.logDebug("Another process already knows this snapshot's state: no request").pipe(
          Effect.annotateLogs({ state: next.health._tag })
        )
        yield* countAttempt("shared")
        return yield* Effect.fail(next.error)
      case "Nothing":
        return
      case "Request": {
        if (next.health !== undefined) {
          yield* update(stateRef, RefreshState.withHealth(current.hash, next.health))
        }
        // Another run (stopped, or alive beside this one) may have kept a refresh of this very
        // token that it could not save: its tokens are taken, and the replaced token is not sent.
        const kept = yield* persistence.keptFor(stored, next.refreshToken)
        if (Option.isSome(kept)) {
          yield* Effect.logInfo("Adopted refreshed tokens another run kept but could not save; saving them")
          yield* countAttempt("adopted")
          yield* update(stateRef, RefreshState.adoptKept(stored, kept.value))
          yield* persistence.setAside(kept)
          return yield* persistence.keepSaving(Duration.zero)
        }
        yield* Effect.logDebug("Refreshing the access token").pipe(
          Effect.annotateLogs({ snapshot: current.hash.slice(0, 12) })
        )
        yield* Ref.set(requested, Option.some(flight))
        const outcome = yield* answer(next.refreshToken, flight, current.hash)
        const now = yield* Clock.currentTimeMillis
        return yield* Result.match(outcome, {
          onFailure: (error) => recordFailure(current, base, error, now),
          onSuccess: (tokens) => persistence.commit(base, next, tokens, now)
        })
      }
    }
  })
}

// The refresh proper, run detached from the callers that asked, under the store's
// refresh lock (among all the processes sharing the credentials, one at a time): read what
// storage holds, `plan` (adopt it, answer from what another process learned, or request),
// then the request and the compare-and-set. `base` is the hash storage held when `current`
// was made (they differ while unsaved).
const attemptOf = (dependencies: Dependencies) => {
  const { settings, stateRef, store } = dependencies
  const { recordTransient } = recordsOf(dependencies)
  const carryOut = carryOutOf(dependencies)
  return (current: AuthDocument.AuthSnapshot, base: string, flight: RefreshState.Flight) =>
    store.withRefreshLock(Effect.gen(function*() {
      // Abandoned while it waited for the lock: the newer credentials were adopted, nothing to do.
      if (flight.claim.phase === "abandoned") return
      flight.claim.phase = "running"
      const stored = yield* store.load
      const known = stored.hash !== base
        ? undefined
        : Option.getOrUndefined(
          Option.flatMap(yield* store.loadShared, (shared) => SharedState.toHealth(shared, current.hash))
        )
      const next = RefreshState.plan(
        yield* SubscriptionRef.get(stateRef),
        { current, base, stored, known },
        yield* Clock.currentTimeMillis,
        settings
      )
      return yield* carryOut(next, current, base, stored, flight)
    })).pipe(
      // The store failed before any request (lock, read): said, and backed off, as any passing trouble
      // (not for a flight abandoned meanwhile: the newer credentials answered it).
      Effect.catchTag(
        "AuthStoreError",
        (error) =>
          flight.claim.phase === "abandoned" ?
            Effect.void :
            Effect.flatMap(Clock.currentTimeMillis, (now) =>
              recordTransient(
                current.hash,
                new TransientRefreshError({
                  kind: "storage",
                  detail: `could not ${error.operation} ${error.path}: ${error.problem}`
                }),
                now
              ))
      )
    )
}

// A flight cut short by the manager stopping (its scope closing) still answers its callers, who
// would otherwise wait for it forever.
const answerOfExit = (exit: Exit.Exit<void, RefreshError>): Exit.Exit<void, RefreshError> =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
    ? Exit.fail(timedOut("the manager stopped before the refresh finished"))
    : exit

// `decide` is the usual one of a refresh, or the forced one of a 401 recovery.
const startFlightOf = (dependencies: Dependencies) => {
  const { scope, stateRef } = dependencies
  const attempt = attemptOf(dependencies)
  return (decide: (state: RefreshState.State, now: number) => RefreshState.Decision) =>
    Effect.uninterruptible(Effect.gen(function*() {
      const done = yield* Deferred.make<void, RefreshError>()
      const now = yield* Clock.currentTimeMillis
      const decision = yield* SubscriptionRef.modify(stateRef, (state): readonly [Claim, RefreshState.State] => {
        const next = decide(state, now)
        if (next._tag !== "Start") return [next, state]
        const flight: RefreshState.Flight = {
          hash: state.snapshot.hash,
          base: state.stored,
          done,
          claim: { phase: "waiting", fiber: undefined }
        }
        return [{ _tag: "Started", flight, snapshot: state.snapshot, base: state.stored }, {
          ...state,
          inflight: flight
        }]
      })
      if (decision._tag === "Started") {
        // Claimed and forked in one uninterruptible step, so that a claimed flight always runs.
        // A fiber forked in Effect 4 starts interruptible: its own timeouts can cut a request
        // that hangs, and closing `scope` stops it.
        const { claim } = decision.flight
        claim.fiber = yield* attempt(decision.snapshot, decision.base, decision.flight).pipe(
          Effect.withSpan("AuthManager.refreshFlight", {
            attributes: { snapshot: decision.snapshot.hash.slice(0, 12) }
          }),
          // Abandoned while waiting for the lock: `abandonIfAdopted` answered its callers already.
          Effect.onExit((exit) => claim.phase === "abandoned" ? Effect.void : Deferred.done(done, answerOfExit(exit))),
          Effect.ensuring(update(stateRef, RefreshState.endFlight(decision.flight))),
          // The manager stopped already: the flight ends here, its callers told so.
          (run) =>
            forkInOrElse(
              run,
              scope,
              Effect.andThen(
                Deferred.done(done, answerOfExit(Exit.interrupt())),
                update(stateRef, RefreshState.endFlight(decision.flight))
              )
            )
        )
        // Abandoned before its fiber was known: stopped now.
        if (claim.phase === "abandoned" && claim.fiber !== undefined) {
          yield* Fiber.interrupt(claim.fiber).pipe(Effect.forkDetach)
        }
      }
      return decision
    }))
}

/**
 * Called after `state` adopted what storage holds: a flight still waiting for the refresh lock whose
 * base storage no longer holds has nothing left to do (another process refreshed, or someone signed
 * in). It ends here — its callers answered by the newer credentials, the state told it is over —
 * and its fiber is stopped; if the lock is granted first, the fiber finds it abandoned and does
 * nothing. (Ended here, not by its fiber: in Effect 4 a fiber interrupted before it has started
 * never runs, its finalizers included.) Without it, every process that was waiting would take the
 * lock in turn only to find the newer credentials: with K replicas, K − 1 lock hand-offs per
 * refresh. A flight that holds the lock is never stopped.
 */
export const abandonIfAdopted =
  (stateRef: SubscriptionRef.SubscriptionRef<RefreshState.State>) => (state: RefreshState.State): Effect.Effect<void> =>
    Effect.uninterruptible(Effect.suspend(() => {
      const flight = state.inflight
      if (flight === undefined || state.stored === flight.base || flight.claim.phase !== "waiting") return Effect.void
      flight.claim.phase = "abandoned"
      const fiber = flight.claim.fiber
      return Effect.all([
        countAttempt("adopted"),
        Deferred.done(flight.done, Exit.void),
        update(stateRef, RefreshState.endFlight(flight)),
        fiber === undefined ? Effect.void : Effect.forkDetach(Fiber.interrupt(fiber))
      ], { discard: true })
    }))

/** Builds the single flight of refreshes over `dependencies`. */
export const make = (dependencies: Dependencies) => {
  const { settings, stateRef } = dependencies
  const startFlight = startFlightOf(dependencies)

  const decideNow = (state: RefreshState.State, now: number) => RefreshState.decide(state, now, settings)

  const refreshUntraced = Effect.fnUntraced(function*() {
    const now = yield* Clock.currentTimeMillis
    const first = RefreshState.decide(yield* SubscriptionRef.get(stateRef), now, settings)
    const decision: Claim = first._tag === "Start" ? yield* startFlight(decideNow) : first
    switch (decision._tag) {
      case "Skip":
        return
      case "Poisoned":
        yield* increment(poisonHits)
        return yield* Effect.fail(decision.error)
      case "CoolingDown":
        yield* increment(cooldownHits)
        return yield* Effect.fail(decision.error)
      case "Join":
        yield* increment(joinedCallers)
        return yield* Deferred.await(decision.flight.done)
      case "Started":
        return yield* Deferred.await(decision.flight.done)
    }
  })

  // The outcome is already recorded in the state (and logged once) by the flight. A bug in a
  // refresh (a defect) must not fail a poll either, since a poll never fails because of a refresh:
  // it is logged, by its name only.
  const refreshQuietly: Effect.Effect<void> = Effect.ignore(
    refreshUntraced().pipe(
      Effect.catchDefect((defect) =>
        Effect.logError("A refresh failed unexpectedly").pipe(
          Effect.annotateLogs({ defect: defect instanceof Error ? defect.name : typeof defect })
        )
      )
    )
  )

  return { startFlight, refreshUntraced, refreshQuietly }
}

/** The single flight of refreshes (see `make`). */
export type Flight = ReturnType<typeof make>
