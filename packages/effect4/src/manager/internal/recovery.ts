/**
 * The recovery from a token an API refused (HTTP 401): the host's tokens first, else storage read
 * again, then one forced refresh in the single flight.
 */
import { Clock, Deferred, Duration, Effect, Option, type Redacted, Ref, SubscriptionRef } from "effect"
import type { Settings } from "../../config/Settings.js"
import type { AuthStoreError, RefreshError } from "../../errors/Errors.js"
import type { AuthState, UnauthorizedRecovery } from "../AuthState.js"
import type { HostTokensHandle } from "../HostTokens.js"
import * as RefreshState from "../RefreshState.js"
import type { Flight } from "./flight.js"
import { countRecovery, increment, joinedCallers } from "./metrics.js"
import * as Unauthorized from "./unauthorized.js"

/** What the recovery needs of the manager. */
export interface Dependencies {
  readonly settings: Settings
  readonly stateRef: SubscriptionRef.SubscriptionRef<RefreshState.State>
  readonly reload: Effect.Effect<AuthState, AuthStoreError>
  readonly startFlight: Flight["startFlight"]
  readonly host: HostTokensHandle
}

interface Recovered {
  readonly hash: string
  readonly at: number
  readonly warned: boolean
}

/** Builds `reportUnauthorized` over `dependencies`. */
export const make = Effect.fnUntraced(function*({ host, reload, settings, startFlight, stateRef }: Dependencies) {
  // The API's 401 is evidence the token is dead, so the minimum interval does not
  // apply; but a token that a recovery has just obtained and that is refused again is not
  // refreshed again inside that interval, or an API refusing every token would drive a refresh
  // per request.
  const forcedSettings: Settings = { ...settings, minRefreshInterval: Duration.zero }
  const justRecovered = yield* Ref.make(Option.none<Recovered>())

  // Storage read again: another process may have refreshed already (a file read, no request).
  // Some when the recovery ends there: the token was replaced, or was just obtained by a recovery.
  const beforeRefreshing = Effect.fnUntraced(function*(rejected: Redacted.Redacted<string>) {
    yield* reload
    const current = yield* SubscriptionRef.get(stateRef)
    if (!Unauthorized.holds(current, rejected)) return Option.some<UnauthorizedRecovery>("reloaded")
    const now = yield* Clock.currentTimeMillis
    const recent = Option.exists(
      yield* Ref.get(justRecovered),
      (last) => last.hash === current.snapshot.hash && now - last.at < Duration.toMillis(settings.minRefreshInterval)
    )
    if (!recent) return Option.none<UnauthorizedRecovery>()
    // Once per token: an API that refuses every token would otherwise log every request.
    const first = yield* Ref.modify(justRecovered, (last) =>
      Option.exists(last, (l) => !l.warned)
        ? [true, Option.map(last, (l) => ({ ...l, warned: true }))] as const
        : [false, last] as const)
    if (first) {
      yield* Effect.logWarning("The API refused a token just obtained by a 401 recovery: not refreshing it again yet")
    }
    return Option.some<UnauthorizedRecovery>("unchanged")
  })

  const recover = Effect.fnUntraced(function*(rejected: Redacted.Redacted<string>) {
    const before = yield* SubscriptionRef.get(stateRef)
    if (before.health._tag === "Poisoned") return yield* Effect.fail(before.health.error)
    if (!Unauthorized.holds(before, rejected)) return "replaced" as const
    if (before.inflight?.hash !== before.snapshot.hash) {
      const ended = yield* beforeRefreshing(rejected)
      if (Option.isSome(ended)) return ended.value
    }
    const decision = yield* startFlight((state, now) =>
      Unauthorized.holds(state, rejected) ? RefreshState.decide(state, now, forcedSettings) : { _tag: "Skip" }
    )
    switch (decision._tag) {
      case "Poisoned":
      case "CoolingDown":
        return yield* Effect.fail(decision.error)
      case "Join":
        yield* increment(joinedCallers)
        yield* Deferred.await(decision.flight.done)
        break
      case "Started":
        yield* Deferred.await(decision.flight.done)
        break
    }
    const after = yield* SubscriptionRef.get(stateRef)
    if (Unauthorized.holds(after, rejected)) return "unchanged" as const
    if (decision._tag === "Skip") return "replaced" as const
    if (decision._tag === "Started") {
      yield* Ref.set(
        justRecovered,
        Option.some({ hash: after.snapshot.hash, at: yield* Clock.currentTimeMillis, warned: false })
      )
    }
    return "refreshed" as const
  })

  const reportUnauthorized = Effect.fn("AuthManager.reportUnauthorized")(
    function*(rejected: Redacted.Redacted<string>) {
      const byHost = yield* host.recover(rejected)
      const outcome: UnauthorizedRecovery = Option.isSome(byHost) ? byHost.value : yield* recover(rejected)
      yield* Effect.annotateCurrentSpan("outcome", outcome)
      return outcome
    },
    Effect.tapError((error: RefreshError) =>
      countRecovery(error._tag === "PermanentRefreshError" ? "poisoned" : "failed")
    ),
    Effect.tap(countRecovery)
  )
  return reportUnauthorized
})
