/**
 * The life of one sign-in, whatever its kind: its own scope (the loopback
 * server, the device polling), its outcome settled once, the save under
 * `announce`, the time limit, a cancel, and the scope closed at the end.
 */
import * as Jwt from "@effect-auth-manager/core/jwt"
import { makeLoginId } from "@effect-auth-manager/core/pkce"
import { Cause, Deferred, Duration, Effect, Exit, Option, Redacted, Ref, Result, Scope, Semaphore } from "effect"
import { SignInError } from "../../errors/Errors.js"
import type { AuthManagerShape } from "../../manager/AuthManager.js"
import type { AuthState } from "../../manager/AuthState.js"
import type { Obtained } from "./exchange.js"

/** Runs once with the outcome (and the login's id), before `await` returns it. */
export type OnComplete = (outcome: Result.Result<AuthState, SignInError>, loginId: string) => Effect.Effect<void>

/** What a sign-in's setup gets to work with. */
export interface LoginContext {
  readonly scope: Scope.Scope
  readonly finish: (exit: Exit.Exit<AuthState, SignInError>) => Effect.Effect<void>
  readonly save: (tokens: Obtained) => Effect.Effect<AuthState, SignInError>
  readonly successServed: Deferred.Deferred<void>
}

/** The sign-in in progress of a service, if any. */
export interface Running {
  readonly loginId: string
  readonly cancel: Effect.Effect<void>
}

export interface Started {
  readonly loginId: string
  readonly await: Effect.Effect<AuthState, SignInError>
  readonly cancel: Effect.Effect<void>
  readonly closed: Effect.Effect<void>
}

// How long a finished browser sign-in keeps its server up for the browser to fetch /success.
const successGrace = Duration.seconds(5)

// The account the id_token names (Codex's claim, read by the core), saved beside the tokens.
const accountIdOf = (idToken: Option.Option<Redacted.Redacted<string>>): string | null =>
  Option.match(idToken, {
    onNone: () => null,
    onSome: (token) => Jwt.idTokenClaims(Redacted.value(token), null).accountId
  })

const outcomeOf = (exit: Exit.Exit<AuthState, SignInError>): Result.Result<AuthState, SignInError> =>
  Exit.match(exit, {
    onFailure: (cause) =>
      Result.fail(Option.getOrElse(Cause.findErrorOption(cause), () => new SignInError({ reason: "canceled" }))),
    onSuccess: (state) => Result.succeed(state)
  })

const logOutcome = (outcome: Result.Result<AuthState, SignInError>, loginId: string) =>
  Result.match(outcome, {
    onFailure: (error) =>
      Effect.logInfo("Sign-in ended without credentials").pipe(
        Effect.annotateLogs({ loginId, reason: error.reason, detail: error.detail ?? null })
      ),
    onSuccess: () => Effect.logInfo("Signed in; credentials saved").pipe(Effect.annotateLogs({ loginId }))
  })

/** What `begin` needs of the service. */
export interface Service {
  readonly auth: AuthManagerShape
  readonly layerScope: Scope.Scope
  readonly current: Ref.Ref<Option.Option<Running>>
  readonly timeout: Duration.Duration
}

/** Cancels the sign-in in progress, if any, and waits until its server is closed. */
export const cancelCurrent = (current: Ref.Ref<Option.Option<Running>>) =>
  Effect.flatMap(
    Ref.getAndSet(current, Option.none()),
    (running) => Option.match(running, { onNone: () => Effect.void, onSome: (login) => login.cancel })
  )

/** Starts a sign-in: cancels the one in progress, runs `setup`, and watches the new one until it ends. */
export const begin = Effect.fnUntraced(function*<Info>(
  service: Service,
  kind: "browser" | "device",
  options: { readonly onComplete?: OnComplete | undefined; readonly announce?: Semaphore.Semaphore | undefined },
  setup: (context: LoginContext) => Effect.Effect<Info, SignInError>
) {
  const { auth, current, layerScope } = service
  yield* cancelCurrent(current)
  const loginId = yield* Effect.sync(makeLoginId)
  const scope = yield* Scope.fork(layerScope, "sequential")
  const done = yield* Deferred.make<AuthState, SignInError>()
  const closed = yield* Deferred.make<void>()
  const canceled = yield* Deferred.make<void>()
  const successServed = yield* Deferred.make<void>()
  const announce = options.announce ?? (yield* Semaphore.make(1))

  const finish = (exit: Exit.Exit<AuthState, SignInError>) =>
    Effect.flatMap(Deferred.done(done, exit), (first) => {
      if (!first) return Effect.void
      const outcome = outcomeOf(exit)
      return Effect.andThen(logOutcome(outcome, loginId), options.onComplete?.(outcome, loginId) ?? Effect.void)
    })

  // The service's scope closing (its layer released) ends the sign-in too, whatever else was under
  // way: nobody waits for ever. Added first, so it runs once the sign-in's server is closed.
  yield* Scope.addFinalizer(
    scope,
    finish(Exit.fail(new SignInError({ reason: "canceled", detail: "the sign-in service stopped" }))).pipe(
      Effect.andThen(Deferred.succeed(closed, undefined))
    )
  )

  // The save and the completion are one step under `announce`, and a canceled login saves nothing.
  // Waiting for `announce` stays interruptible (a cancel may hold it); the save itself is not.
  const save = (tokens: Obtained) =>
    announce.withPermits(1)(Effect.uninterruptible(Effect.gen(function*() {
      if (yield* Deferred.isDone(done)) return yield* Deferred.await(done)
      const saved = yield* Effect.exit(
        auth.loginWithTokens({
          idToken: Option.getOrElse(tokens.idToken, () => Redacted.make("")),
          accessToken: tokens.accessToken,
          refreshToken: tokens.refreshToken,
          accountId: accountIdOf(tokens.idToken),
          expiresIn: Option.getOrUndefined(tokens.expiresIn)
        }).pipe(Effect.mapError((error) => new SignInError({ reason: "storage", detail: error.message })))
      )
      yield* finish(saved)
      return yield* saved
    })))

  const info = yield* setup({ scope, finish, save, successServed }).pipe(
    Effect.onError(() => Scope.close(scope, Exit.void))
  )

  // Only a browser comes back for a page; a device sign-in is over once saved.
  const waitForBrowser = Effect.timeout(
    Effect.race(Deferred.await(successServed), Deferred.await(canceled)),
    successGrace
  ).pipe(
    Effect.ignore,
    Effect.when(Effect.map(Effect.exit(Deferred.await(done)), (exit) => kind === "browser" && Exit.isSuccess(exit)))
  )

  // Ends the sign-in on time, then closes its server, whatever ended it.
  yield* Deferred.await(done).pipe(
    Effect.timeoutOption(service.timeout),
    Effect.flatMap(Option.match({
      onNone: () =>
        finish(Exit.fail(
          new SignInError({ reason: "timeout", detail: `not completed within ${Duration.format(service.timeout)}` })
        )),
      onSome: () => Effect.void
    })),
    Effect.catch(() => Effect.void),
    Effect.andThen(waitForBrowser),
    Effect.ensuring(Scope.close(scope, Exit.void)),
    Effect.ensuring(Ref.update(current, Option.filter((login) => login.loginId !== loginId))),
    Effect.ensuring(Deferred.succeed(closed, undefined)),
    Effect.forkIn(layerScope)
  )

  const cancel = Deferred.succeed(canceled, undefined).pipe(
    Effect.andThen(finish(Exit.fail(new SignInError({ reason: "canceled" })))),
    Effect.andThen(Deferred.await(closed))
  )
  yield* Ref.set(current, Option.some({ loginId, cancel }))
  yield* Effect.logInfo("Sign-in started").pipe(Effect.annotateLogs({ loginId, kind }))
  return {
    info,
    login: { loginId, await: Deferred.await(done), cancel, closed: Deferred.await(closed) } satisfies Started
  }
})
