/**
 * The manager's counters: refreshes by outcome, requests spared by the poison record or a
 * backoff, callers joining a flight, and 401 recoveries by what they did.
 */
import { Effect, Metric } from "effect"
import type { AuthStatus, UnauthorizedRecovery } from "../AuthState.js"

const counter = (name: string, description: string) => Metric.counter(name, { description, incremental: true })

/** One counter per value of `key`, made once: a counted event only picks one. */
const byOutcome = <K extends string>(metric: Metric.Counter<number>, outcomes: ReadonlyArray<K>) => {
  const counters = new Map(outcomes.map((outcome) => [outcome, Metric.withAttributes(metric, { outcome })]))
  return (outcome: K): Effect.Effect<void> => Metric.update(counters.get(outcome)!, 1)
}

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

export const countAttempt = byOutcome(
  counter(
    "effect_auth_refresh_attempts_total",
    "Refreshes that ran (or found newer credentials in storage), by outcome"
  ),
  ["success", "permanent", "transient", "adopted", "shared"] as const
)

export const countRecovery = byOutcome(
  counter(
    "effect_auth_unauthorized_recoveries_total",
    "Tokens an API refused (HTTP 401), by what recovery did: replaced, reloaded, refreshed, unchanged, poisoned, failed"
  ),
  ["replaced", "reloaded", "refreshed", "unchanged", "poisoned", "failed"] as const satisfies ReadonlyArray<
    UnauthorizedRecovery | "poisoned" | "failed"
  >
)

/** Adds one to `metric`. */
export const increment = (metric: Metric.Counter<number>): Effect.Effect<void> => Metric.update(metric, 1)

// The counter updated in the answer's own step, with the fiber's metric attributes (a poll
// answered from the poison record stays one step).
export const counted = (metric: Metric.Counter<number>, answer: Effect.Effect<AuthStatus>) =>
  Effect.withFiber<AuthStatus>((fiber) => {
    metric.updateUnsafe(1, fiber.context)
    return answer
  })
