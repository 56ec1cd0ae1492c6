/**
 * How a sign-in ends: its outcome settled once (the first ending wins), logged without a
 * secret, and handed to the caller's `onComplete`.
 */
import { Cause, Deferred, Effect, Either, Exit, Option } from "effect"
import { SignInError } from "../../errors/Errors.js"
import type { AuthState } from "../../manager/AuthState.js"

export type OnComplete = (outcome: Either.Either<AuthState, SignInError>, loginId: string) => Effect.Effect<void>

/** Ends the sign-in behind `done` with `exit`, unless it has ended already. */
export const finisher = (
  done: Deferred.Deferred<AuthState, SignInError>,
  loginId: string,
  onComplete: OnComplete | undefined
) =>
(exit: Exit.Exit<AuthState, SignInError>): Effect.Effect<void> =>
  Effect.flatMap(Deferred.done(done, exit), (first) => {
    if (!first) return Effect.void
    const outcome: Either.Either<AuthState, SignInError> = Exit.match(exit, {
      onFailure: (cause) =>
        Either.left(Option.getOrElse(Cause.failureOption(cause), () => new SignInError({ reason: "canceled" }))),
      onSuccess: (state) => Either.right(state)
    })
    const logged = Either.match(outcome, {
      onLeft: (error) =>
        Effect.logInfo("Sign-in ended without credentials").pipe(
          Effect.annotateLogs({ loginId, reason: error.reason, detail: error.detail ?? null })
        ),
      onRight: () => Effect.logInfo("Signed in; credentials saved").pipe(Effect.annotateLogs({ loginId }))
    })
    return Effect.zipRight(logged, onComplete?.(outcome, loginId) ?? Effect.void)
  })
