/**
 * Forking work whose answer someone waits for, into a scope that may close at any moment.
 */
import { Effect, type Fiber, type Scope } from "effect"

/**
 * Forks `effect` in `scope`, started at once; when the scope is closed already (its owner
 * stopping), runs `closed` instead and forks nothing. In Effect 4 a fiber interrupted before its
 * first step never runs, its finalizers included, and a forked fiber's first step is otherwise
 * taken on a later tick: a scope closing in between would leave whoever waits for its answer
 * waiting forever. Started at once, `effect` has its finalizers (its answer) in place before
 * anything else runs, and `closed` answers for a scope closed before.
 */
export const forkInOrElse = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  scope: Scope.Scope,
  closed: Effect.Effect<void>
): Effect.Effect<Fiber.Fiber<A, E> | undefined, never, R> =>
  Effect.suspend(() =>
    scope.state._tag === "Closed"
      ? Effect.as(closed, undefined)
      : Effect.forkIn(effect, scope, { startImmediately: true })
  )
