/**
 * A flight's token request and what its outcome leaves behind: the request awaited for its callers
 * up to the refresh timeout and, for a late answer that may rotate the refresh token, up to the
 * answer limit; a failure recorded as poison (a dead refresh token) or a backoff (a passing trouble),
 * and shared with the other processes on the same credentials.
 */
import { Clock, Duration, Effect, Either, Exit, Fiber, Option, Random, type Redacted, Ref } from "effect"
import type { Settings } from "../../config/Settings.js"
import type * as AuthDocument from "../../document/AuthDocument.js"
import { type PermanentRefreshError, type RefreshError, TransientRefreshError } from "../../errors/Errors.js"
import type { TokenRefresherShape } from "../../oauth/TokenRefresher.js"
import type { AuthStoreShape } from "../../stores/AuthStore.js"
import * as RefreshState from "../RefreshState.js"
import * as SharedState from "../SharedState.js"
import { countAttempt } from "./metrics.js"
import * as Turns from "./turns.js"

/** What a flight's request and its recording need of the manager (part of the flight's own). */
export interface Dependencies {
  readonly store: AuthStoreShape
  readonly refresher: TokenRefresherShape
  readonly settings: Settings
  /** The state (a `SubscriptionRef` for a manager; a plain `Ref` for a keyed manager's light credential). */
  readonly stateRef: Ref.Ref<RefreshState.State>
  readonly writes: Effect.Semaphore
}

// How a failed request is recorded: a dead refresh token poisons the snapshot, a passing trouble backs off.
export const recordsOf = ({ settings, stateRef, store, writes }: Dependencies) => {
  // Tells the other processes sharing the credentials what this one learned about snapshot `hash`.
  const share = (hash: string, now: number) =>
    Effect.flatMap(
      Ref.get(stateRef),
      (state) =>
        state.snapshot.hash === hash ? store.saveShared(SharedState.fromHealth(hash, state.health, now)) : Effect.void
    )

  // `shared`: a failure of this process's storage is its own; the others are not told to wait.
  const recordTransient = Effect.fnUntraced(function*(hash: string, error: TransientRefreshError, now: number) {
    yield* Ref.update(stateRef, RefreshState.coolDown(hash, error, now, yield* Random.next, settings))
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
    yield* Ref.update(stateRef, RefreshState.withHealth(hash, { _tag: "Poisoned", error }))
    yield* share(hash, now)
    yield* countAttempt("permanent")
    yield* Effect.logWarning("Refresh token is dead; this snapshot makes no more requests until sign-in").pipe(
      Effect.annotateLogs({ reason: error.reason, status: error.status ?? null })
    )
    return yield* Effect.fail(error)
  })

  // The outcome of the request: a refresh token the provider declared dead is recorded only if
  // storage still holds what was refreshed; a transient failure backs off.
  const recordFailure = (current: AuthDocument.AuthSnapshot, base: string, error: RefreshError, now: number) => {
    if (error._tag === "TransientRefreshError") return recordTransient(current.hash, error, now)
    if (error._tag !== "PermanentRefreshError") return Effect.fail(error)
    return writes.withPermits(1)(Effect.gen(function*() {
      const latest = yield* Effect.option(store.load)
      if (!RefreshState.deathApplies(Option.getOrUndefined(latest), base)) {
        yield* countAttempt("adopted")
        return yield* Ref.update(stateRef, RefreshState.adopt(Option.getOrThrow(latest)))
      }
      return yield* recordPermanent(current.hash, error, now)
    }))
  }
  return { recordTransient, recordFailure }
}

// The token request runs on its own fiber: callers stop waiting after `refreshTimeout`, the request
// does not. Its answer, however late (up to `answerLimit`), may carry a rotated refresh token: it
// is still committed. Until then the flight stays open, holding the refresh lock and joined by
// later callers, so the same refresh token is not sent again meanwhile, here or elsewhere.
export const answerOf = ({ refresher, settings, stateRef }: Dependencies) =>
  Effect.fnUntraced(function*(
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
    yield* Ref.update(
      stateRef,
      RefreshState.coolDown(hash, error, yield* Clock.currentTimeMillis, yield* Random.next, settings)
    )
    yield* Turns.settle(flight, Exit.fail(error))
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
