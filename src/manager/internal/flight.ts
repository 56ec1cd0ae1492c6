/**
 * The single flight of a refresh: decide, then, detached from the callers, under the store's
 * refresh lock, read storage, plan, request and compare-and-set; a late answer is still awaited
 * and committed. Callers join the flight in progress.
 */
import {
  Clock,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  identity,
  Metric,
  Option,
  Ref,
  Scope,
  Tracer
} from "effect"
import type * as AuthDocument from "../../document/AuthDocument.js"
import { type RefreshError, TransientRefreshError } from "../../errors/Errors.js"
import { logDebugAnnotated } from "../../util/debugLog.js"
import * as RefreshState from "../RefreshState.js"
import * as SharedState from "../SharedState.js"
import { cooldownHits, countAttempt, joinedCallers, poisonHits } from "./metrics.js"
import * as Outcome from "./outcome.js"
import type { Persistence } from "./persistence.js"
import * as Turns from "./turns.js"

/** What the flight needs of the manager. */
export interface Dependencies extends Outcome.Dependencies {
  /** Where flights run, closed only after the flight in progress is waited for. */
  readonly scope: Scope.Scope
  /** The flight whose token request has been sent: its answer may rotate the refresh token. */
  readonly requested: Ref.Ref<Option.Option<RefreshState.Flight>>
  readonly persistence: Persistence
  /** A keyed manager's flights take turns (see `turns.ts`); a manager's flight starts at once. */
  readonly turns?: Turns.Turns | undefined
  /**
   * Tags the flight's logs and spans (a keyed manager's key): a flight that waited for its turn is
   * started from another fiber (one of another key), whose tags it must not carry. A keyed
   * manager's caller is not tagged: the one log on its side (a defect of the refresh) is tagged
   * with this too.
   */
  readonly annotate?: (<A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>) | undefined
  /** A keyed manager's credential key: its flight waits aside while its lock is held elsewhere (`turns.ts`). */
  readonly key?: string | undefined
}

export type Claim =
  | Exclude<RefreshState.Decision, { readonly _tag: "Start" }>
  | {
    readonly _tag: "Started"
    readonly flight: RefreshState.Flight
    readonly snapshot: AuthDocument.AuthSnapshot
    readonly base: string
  }

// The refresh proper, run detached from the callers that asked, under the store's
// refresh lock (among all the processes sharing the credentials, one at a time): read what
// storage holds, `plan` (adopt it, answer from what another process learned, or request),
// then the request and the compare-and-set. `base` is the hash storage held when `current`
// was made (they differ while unsaved).
const attemptOf = (dependencies: Dependencies) => {
  const { persistence, requested, settings, stateRef, store } = dependencies
  const { recordFailure, recordTransient } = Outcome.recordsOf(dependencies)
  const answer = Outcome.answerOf(dependencies)
  return (current: AuthDocument.AuthSnapshot, base: string, flight: RefreshState.Flight) =>
    store.withRefreshLock(Effect.suspend(() => {
      // Abandoned while it waited for the lock: the newer credentials were adopted, nothing to do.
      if (flight.claim.phase === "abandoned") return Effect.void
      flight.claim.phase = "running"
      return underLock(current, base, flight)
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

  function underLock(current: AuthDocument.AuthSnapshot, base: string, flight: RefreshState.Flight) {
    return Effect.gen(function*() {
      const stored = yield* store.load
      const known = stored.hash !== base
        ? undefined
        : Option.getOrUndefined(
          Option.flatMap(yield* store.loadShared, (shared) => SharedState.toHealth(shared, current.hash))
        )
      const next = RefreshState.plan(
        yield* Ref.get(stateRef),
        { current, base, stored, known },
        yield* Clock.currentTimeMillis,
        settings
      )
      switch (next._tag) {
        case "Adopt":
          yield* Effect.logDebug("Storage holds newer credentials: adopted with no request")
          yield* countAttempt("adopted")
          return yield* Ref.update(stateRef, RefreshState.adopt(next.snapshot))
        case "Known":
          yield* Ref.update(stateRef, RefreshState.withHealth(current.hash, next.health))
          yield* Effect.logDebug("Another process already knows this snapshot's state: no request").pipe(
            Effect.annotateLogs({ state: next.health._tag })
          )
          yield* countAttempt("shared")
          return yield* Effect.fail(next.error)
        case "Nothing":
          return
        case "Request": {
          if (next.health !== undefined) {
            yield* Ref.update(stateRef, RefreshState.withHealth(current.hash, next.health))
          }
          // Another run (stopped, or alive beside this one) may have kept a refresh of this very
          // token that it could not save: its tokens are taken, and the replaced token is not sent.
          const kept = yield* persistence.keptFor(stored, next.refreshToken)
          if (Option.isSome(kept)) {
            yield* Effect.logInfo("Adopted refreshed tokens another run kept but could not save; saving them")
            yield* countAttempt("adopted")
            yield* Ref.update(stateRef, RefreshState.adoptKept(stored, kept.value))
            yield* persistence.setAside(kept)
            return yield* persistence.keepSaving(Duration.zero)
          }
          yield* logDebugAnnotated("Refreshing the access token", { snapshot: current.hash.slice(0, 12) })
          yield* Ref.set(requested, Option.some(flight))
          const outcome = yield* answer(next.refreshToken, flight, current.hash)
          const now = yield* Clock.currentTimeMillis
          return yield* Either.match(outcome, {
            onLeft: (error) => recordFailure(current, base, error, now),
            onRight: (tokens) => persistence.commit(base, next, tokens, now)
          })
        }
      }
    })
  }
}

/** How a flight still waiting for its turn ends when it is abandoned (see `abandonIfAdopted`). */
const waitingForTurn = new WeakMap<RefreshState.Flight["claim"], () => Effect.Effect<void>>()

/**
 * A manager's flight: what it needs, and its attempt once made. The functions below take it, so
 * that a flight costs a key little until it runs: a keyed manager's flight that waits for its turn
 * mostly ends in line (another replica refreshed its key), and thousands may wait at once.
 */
interface FlightCore {
  readonly dependencies: Dependencies
  attempt: ReturnType<typeof attemptOf> | undefined
}

const finishOf = ({ dependencies }: FlightCore, flight: RefreshState.Flight) =>
  Effect.zipRight(
    Ref.update(dependencies.stateRef, RefreshState.endFlight(flight)),
    Deferred.succeed(flight.ended, undefined)
  )

// A flight abandoned before its turn: over at once, with nothing done.
const endInLine = (self: FlightCore, flight: RefreshState.Flight) =>
  Effect.uninterruptible(Effect.zipRight(
    Effect.zipRight(countAttempt("adopted"), Turns.settle(flight, Exit.void)),
    finishOf(self, flight)
  ))

// Forked from an uninterruptible region, the flight would inherit it, and its own timeouts could
// never interrupt a request that hangs: the attempt is made interruptible.
const runOf = (self: FlightCore, { base, flight, snapshot }: Extract<Claim, { readonly _tag: "Started" }>) =>
  Effect.suspend(() =>
    flight.claim.phase === "abandoned"
      ? Effect.void
      : (self.attempt ??= attemptOf(self.dependencies))(snapshot, base, flight)
  ).pipe(
    Effect.withSpan("AuthManager.refreshFlight", {
      attributes: { snapshot: snapshot.hash.slice(0, 12) },
      captureStackTrace: false
    }),
    Effect.interruptible,
    Effect.exit,
    // Abandoned while waiting for the lock (and so interrupted): the newer credentials storage gave
    // are the callers' answer.
    Effect.flatMap((exit) =>
      flight.claim.phase === "abandoned"
        ? Effect.zipRight(countAttempt("adopted"), Turns.settle(flight, Exit.void))
        : Turns.settle(flight, exit)
    ),
    Effect.ensuring(finishOf(self, flight))
  )

// `decide` is the usual one of a refresh, or the forced one of a 401 recovery.
const startFlight = (self: FlightCore, decide: (state: RefreshState.State, now: number) => RefreshState.Decision) => {
  const { dependencies } = self
  const { scope, stateRef, turns } = dependencies
  return Effect.uninterruptible(Effect.gen(function*() {
    const done = yield* Deferred.make<void, RefreshError>()
    const ended = yield* Deferred.make<void>()
    const now = yield* Clock.currentTimeMillis
    const decision = yield* Ref.modify(stateRef, (state): readonly [Claim, RefreshState.State] => {
      const next = decide(state, now)
      if (next._tag !== "Start") return [next, state]
      const flight: RefreshState.Flight = {
        hash: state.snapshot.hash,
        base: state.stored,
        done,
        ended,
        claim: { phase: turns === undefined ? "waiting" : "queued", fiber: undefined }
      }
      // Known from the instant the flight is: a change adopted at any step after this one
      // (`abandonIfAdopted`) ends it.
      if (turns !== undefined) waitingForTurn.set(flight.claim, () => endInLine(self, flight))
      return [{ _tag: "Started", flight, snapshot: state.snapshot, base: state.stored }, {
        ...state,
        inflight: flight
      }]
    })
    if (decision._tag === "Started") {
      const { claim } = decision.flight
      if (turns !== undefined) {
        // Started later from another fiber: under this one's parent span and the flight's own tags.
        // What it runs is made when its turn comes (most flights in line end there).
        // (Read as an option: `currentParentSpan` fails when there is none, making an error each time.)
        const parent = yield* Effect.serviceOption(Tracer.ParentSpan)
        yield* turns.enqueue({
          claim,
          key: dependencies.key,
          run: Effect.suspend(() => {
            waitingForTurn.delete(claim)
            const run = runOf(self, decision)
            const annotated = dependencies.annotate === undefined ? run : dependencies.annotate(run)
            return Option.isSome(parent) ? Effect.withParentSpan(annotated, parent.value) : annotated
          }),
          cancel: Effect.suspend(() => {
            waitingForTurn.delete(claim)
            return Effect.uninterruptible(Effect.zipRight(
              Effect.flatMap(Effect.fiberId, (id) => Turns.settle(decision.flight, Exit.interrupt(id))),
              finishOf(self, decision.flight)
            ))
          })
        })
        return decision
      }
      const run = runOf(self, decision)
      claim.fiber = yield* Effect.forkIn(run, scope)
      // Abandoned before its fiber was known: stopped now.
      if (claim.phase === "abandoned") yield* Fiber.interruptFork(claim.fiber)
    }
    return decision
  }))
}

/**
 * Called after `state` adopted what storage holds: a flight still waiting for its turn (it ends at
 * once, nothing sent) or for the refresh lock (it is interrupted) whose base storage no longer
 * holds has nothing left to do (another process refreshed, or
 * someone signed in), and stops waiting. Without it, every process that was waiting would take
 * the lock in turn only to find the newer credentials: with K replicas, K − 1 lock hand-offs per
 * refresh. A flight that holds the lock is never stopped.
 */
export const abandonIfAdopted = (state: RefreshState.State): Effect.Effect<void> =>
  Effect.uninterruptible(Effect.suspend(() => {
    const flight = state.inflight
    if (flight === undefined || state.stored === flight.base) return Effect.void
    const { phase } = flight.claim
    if (phase === "queued") {
      flight.claim.phase = "abandoned"
      const finish = waitingForTurn.get(flight.claim)
      waitingForTurn.delete(flight.claim)
      return finish === undefined ? Effect.void : finish()
    }
    if (phase !== "waiting") return Effect.void
    flight.claim.phase = "abandoned"
    const fiber = flight.claim.fiber
    return fiber === undefined ? Effect.void : Fiber.interruptFork(fiber)
  }))

// A keyed manager's callers of a flight in line wait no longer than the refresh timeout.
const awaitFlight = ({ dependencies }: FlightCore, flight: RefreshState.Flight) =>
  dependencies.turns === undefined ? Deferred.await(flight.done) : dependencies.turns.await(flight)

// What a decision leaves the caller: nothing, an error, or a flight to wait for.
const follow = (self: FlightCore, decision: Claim): Effect.Effect<void, RefreshError> => {
  switch (decision._tag) {
    case "Skip":
      return Effect.void
    case "Poisoned":
      return Effect.zipRight(Metric.increment(poisonHits), Effect.fail(decision.error))
    case "CoolingDown":
      return Effect.zipRight(Metric.increment(cooldownHits), Effect.fail(decision.error))
    case "Join":
      return Effect.zipRight(Metric.increment(joinedCallers), awaitFlight(self, decision.flight))
    case "Started":
      return awaitFlight(self, decision.flight)
  }
}

// (Steps, not a generator: a generator made per call gives each waiting caller hidden classes of
// its own, and a keyed manager's callers wait by the thousand.)
const refreshUntraced = (self: FlightCore): Effect.Effect<void, RefreshError> => {
  const { settings, stateRef } = self.dependencies
  return Effect.flatMap(Effect.zip(Clock.currentTimeMillis, Ref.get(stateRef)), ([now, state]) => {
    const first = RefreshState.decide(state, now, settings)
    if (first._tag !== "Start") return follow(self, first)
    return Effect.flatMap(
      startFlight(self, (current, at) => RefreshState.decide(current, at, settings)),
      (decision) => follow(self, decision)
    )
  })
}

// The outcome is already recorded in the state (and logged once) by the flight. A bug in a refresh
// (a defect) must not fail a poll either, since a poll never fails because of a refresh: it is
// logged, by its name only (tagged as the flight is: a keyed manager's caller runs untagged, the
// tags kept for its flight).
const refreshQuietly = (self: FlightCore) =>
  Effect.ignore(
    refreshUntraced(self).pipe(
      Effect.catchAllDefect((defect) =>
        Effect.logError("A refresh failed unexpectedly").pipe(
          Effect.annotateLogs({ defect: defect instanceof Error ? defect.name : typeof defect }),
          self.dependencies.annotate ?? identity
        )
      )
    )
  )

/** Builds the single flight of refreshes over `dependencies`. */
export const make = (dependencies: Dependencies) => {
  const self: FlightCore = { dependencies, attempt: undefined }
  return {
    startFlight: (decide: (state: RefreshState.State, now: number) => RefreshState.Decision) =>
      startFlight(self, decide),
    refreshUntraced: () => refreshUntraced(self),
    /** A refresh whose outcome the state records: it never fails. */
    refreshQuietly: () => refreshQuietly(self)
  }
}

/** The single flight of refreshes (see `make`). */
export type Flight = ReturnType<typeof make>
