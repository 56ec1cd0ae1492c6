/**
 * Forking work whose answer someone waits for, into a scope that may be closed already.
 */
import { Effect, type Fiber, type Scope } from "effect"

/**
 * Forks `effect` in `scope`; when the scope is closed already (its owner stopping), runs `closed`
 * instead and forks nothing. Effect 4 gives a closed scope a fiber that is interrupted before it
 * starts and never runs, its finalizers included: whoever waits for what it would have answered
 * would wait forever, so `closed` answers them.
 */
export const forkInOrElse = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  scope: Scope.Scope,
  closed: Effect.Effect<void>
): Effect.Effect<Fiber.Fiber<A, E> | undefined, never, R> =>
  Effect.suspend(() => scope.state._tag === "Closed" ? Effect.as(closed, undefined) : Effect.forkIn(effect, scope))
