/**
 * A statement waited for at most a while. A stalled connection, or a row lock another session
 * never lets go, would otherwise hold its caller — a refresh, its callers, the store's shutdown —
 * for as long as the database does not answer. The statement runs on a fiber of its own; the wait
 * for it ends at `timeout`, or when the caller is interrupted. Then a statement whose effect
 * someone must undo (a lease taken) gets one more `timeout` to end, and `unwanted` undoes it; any
 * other, and one that does not end in that time, is interrupted, which asks the database to cancel
 * it and frees its connection (so a write its caller was told failed usually does not land later:
 * one that committed as the bound ran out has).
 */
import { Duration, Effect, Exit, Fiber, Option } from "effect"

export interface Bound<A, E, E2> {
  readonly timeout: Duration.Duration
  /** The caller's error when the database has not answered in time. */
  readonly onTimeout: (problem: string) => E2
  /**
   * Given what the statement ended with, once no one waits for it any more (the caller timed out
   * or was interrupted): undoes what it did that nobody will use (a lease it took).
   */
  readonly unwanted?: ((exit: Exit.Exit<A, E>) => Effect.Effect<void>) | undefined
}

/** `statement`, waited for at most `bound.timeout` (see the module's comment). */
export const bounded = <A, E, R, E2>(
  statement: Effect.Effect<A, E, R>,
  bound: Bound<A, E, E2>
): Effect.Effect<A, E | E2, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Effect.forkDetach(statement), (fiber) => {
      const unwanted = bound.unwanted
      const leftAlone = Effect.asVoid(Effect.forkDetach(
        unwanted === undefined
          ? Fiber.interrupt(fiber)
          : Effect.flatMap(
            Effect.timeoutOption(Fiber.await(fiber), bound.timeout),
            Option.match({
              // What it ended with as it was cut (a take that just succeeded) is still undone.
              onNone: () => Effect.andThen(Fiber.interrupt(fiber), Effect.flatMap(Fiber.await(fiber), unwanted)),
              onSome: unwanted
            })
          )
      ))
      return restore(Effect.timeoutOption(Fiber.await(fiber), bound.timeout)).pipe(
        Effect.onInterrupt(() => leftAlone),
        Effect.flatMap(Option.match({
          onNone: () =>
            Effect.andThen(
              leftAlone,
              Effect.fail(bound.onTimeout(`the database did not answer within ${Duration.format(bound.timeout)}`))
            ),
          onSome: (exit): Effect.Effect<A, E | E2> => exit
        }))
      )
    })
  )
