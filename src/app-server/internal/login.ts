/**
 * The app server's browser and device sign-in (`account/login/start` with
 * `chatgpt` / `chatgptDeviceCode`, `account/login/cancel`, and the
 * `account/login/completed` notification), as the Codex app server answers
 * them. `AppServer` dispatches to it; the work is done by `SignIn`.
 */
import { Data, Effect, Either, Option, Ref, Schema } from "effect"
import { SignIn } from "../../signin/SignIn.js"
import { describeIssues } from "../../util/describeIssues.js"

/** A failed request, as AppServer answers it. */
export class LoginRpcError
  extends Data.TaggedError("LoginRpcError")<{ readonly code: number; readonly message: string }>
{}

const CancelParams = Schema.Struct({ loginId: Schema.String })

/**
 * `announce` is the connection's semaphore for announcements: a sign-in saves
 * and sends `account/login/completed` holding it, so `account/updated` follows.
 */
export const make = (send: (message: object) => Effect.Effect<void>, announce: Effect.Semaphore) =>
  Effect.gen(function*() {
    const signIn = yield* Effect.serviceOption(SignIn)
    // The last sign-in this connection started: another kind of sign-in cancels it, as in Codex.
    const lastStarted = yield* Ref.make(Option.none<string>())

    const onComplete = (outcome: Either.Either<unknown, { readonly message: string }>, loginId: string) =>
      send({
        method: "account/login/completed",
        params: {
          loginId,
          success: Either.isRight(outcome),
          error: Either.isLeft(outcome) ? outcome.left.message : null
        }
      })

    const withSignIn = <A>(run: (service: SignIn["Type"]) => Effect.Effect<A, LoginRpcError>) =>
      Option.match(signIn, {
        onNone: () =>
          Effect.fail(
            new LoginRpcError({ code: -32602, message: "This server is not set up for browser or device sign-in" })
          ),
        onSome: run
      })

    const failed = (error: { readonly message: string }) => new LoginRpcError({ code: -32603, message: error.message })

    /** `account/login/start` for `chatgpt` and `chatgptDeviceCode`; a sign-in in progress is canceled first. */
    const start = (type: "chatgpt" | "chatgptDeviceCode") =>
      withSignIn<object>((service) =>
        type === "chatgpt"
          ? service.startBrowser({ onComplete, announce }).pipe(
            Effect.mapBoth({
              onFailure: failed,
              onSuccess: (login) => ({ type, loginId: login.loginId, authUrl: login.authUrl })
            }),
            Effect.tap((started) => Ref.set(lastStarted, Option.some(started.loginId)))
          )
          : service.startDevice({ onComplete, announce }).pipe(
            Effect.mapBoth({
              onFailure: failed,
              onSuccess: (login) => ({
                type,
                loginId: login.loginId,
                verificationUrl: login.verificationUrl,
                userCode: login.userCode
              })
            }),
            Effect.tap((started) => Ref.set(lastStarted, Option.some(started.loginId)))
          )
      )

    /** `account/login/cancel`: `{status: "canceled"}`, or `"notFound"` for an id that is not in progress. */
    const cancel = (params: unknown) =>
      Effect.gen(function*() {
        const { loginId } = yield* Schema.decodeUnknown(CancelParams)(params ?? {}).pipe(
          Effect.mapError((error) =>
            new LoginRpcError({ code: -32602, message: `Invalid params: ${describeIssues(error)}` })
          )
        )
        const status = Option.isSome(signIn) ? yield* signIn.value.cancel(loginId) : "notFound"
        return { status }
      })

    /** Cancels a browser or device sign-in in progress (before an API key or host tokens replace it). */
    const cancelInProgress = Effect.flatMap(
      Ref.getAndSet(lastStarted, Option.none()),
      (loginId) =>
        Option.isSome(signIn) && Option.isSome(loginId)
          ? Effect.asVoid(signIn.value.cancel(loginId.value))
          : Effect.void
    )

    return { start, cancel, cancelInProgress }
  })
