/**
 * The manager's counters: refreshes by outcome, requests spared by the poison record or a
 * backoff, callers joining a flight, and 401 recoveries by what they did.
 */
import { Effect, FiberRef, Metric } from "effect"
import type { AuthStatus, UnauthorizedRecovery } from "../AuthState.js"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })
const refreshAttempts = counter(
  "effect_auth_refresh_attempts_total",
  "Refreshes that ran (or found newer credentials in storage), by outcome"
)
export const poisonHits = counter(
  "effect_auth_poison_hits_total",
  "Refresh calls answered from the poison record, with no request"
)
export const cooldownHits = counter(
  "effect_auth_cooldown_hits_total",
  "Refresh calls answered during a backoff, with no request"
)
export const joinedCallers = counter(
  "effect_auth_refresh_joined_total",
  "Refresh calls that joined a refresh already in flight"
)
type Outcome = "success" | "permanent" | "transient" | "adopted" | "shared"
// Each outcome's counter made once: a tagged counter made per refresh is a new key hashed and
// looked up in the registry every time.
const attempts = Object.fromEntries(
  (["success", "permanent", "transient", "adopted", "shared"] as const).map((outcome) =>
    [outcome, Metric.increment(Metric.tagged(refreshAttempts, "outcome", outcome))] as const
  )
) as Record<Outcome, Effect.Effect<void>>
export const countAttempt = (outcome: Outcome): Effect.Effect<void> => attempts[outcome]
const unauthorizedRecoveries = counter(
  "effect_auth_unauthorized_recoveries_total",
  "Tokens an API refused (HTTP 401), by what recovery did: replaced, reloaded, refreshed, unchanged, poisoned, failed"
)
export const countRecovery = (outcome: UnauthorizedRecovery | "poisoned" | "failed") =>
  Metric.increment(Metric.tagged(unauthorizedRecoveries, "outcome", outcome))

// `Metric.increment` in one step instead of three, keeping the fiber's metric labels.
export const counted = (counter: typeof poisonHits, answer: Effect.Effect<AuthStatus>) =>
  Effect.withFiberRuntime<AuthStatus>((fiber) => {
    counter.unsafeUpdate(1, fiber.getFiberRef(FiberRef.currentMetricLabels))
    return answer
  })
