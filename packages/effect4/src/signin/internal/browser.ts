/**
 * The browser sign-in's loopback app: the callback that exchanges the code
 * (state checked, once only), `/success` after it, and `/cancel` for a newer
 * login server that wants the port.
 */
import { Deferred, Effect, Exit, Redacted, Ref, Result, type Scope } from "effect"
import { type HttpClient, HttpServerRequest } from "effect/http"
import { SignInError } from "../../errors/Errors.js"
import type { OAuthProvider } from "../../oauth/OAuthProvider.js"
import * as OAuthHttp from "../../oauth/TokenRequest.js"
import { exchangeCode } from "./exchange.js"
import * as Pages from "./pages.js"
import type { LoginContext } from "./session.js"

export interface Callback {
  readonly provider: OAuthProvider
  readonly context: LoginContext
  readonly state: string
  readonly verifier: Redacted.Redacted<string>
  /** `http://127.0.0.1:PORT`, once the server is bound. */
  readonly origin: () => string
  readonly withClient: <A, E, R>(
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, Exclude<R, HttpClient.HttpClient>>
  /** Where work that outlives a request runs. */
  readonly layerScope: Scope.Scope
}

const refusedError = (error: string) =>
  new SignInError({
    reason: error === "access_denied" ? "denied" : "exchange_failed",
    detail: OAuthHttp.isKnownCode(error) ? `the provider answered ${error}` : "the provider answered with an error"
  })

const makeCallback = (callback: Callback, claimed: Ref.Ref<boolean>) => {
  const { context, provider } = callback
  const fail = (error: SignInError, status = 400) =>
    Effect.as(context.finish(Exit.fail(error)), Pages.failure("The sign-in did not complete", error.message, status))

  return Effect.fnUntraced(function*(params: URLSearchParams) {
    // A wrong state is someone else's request: refused, and the sign-in keeps waiting.
    if (params.get("state") !== callback.state) {
      yield* Effect.logWarning("Sign-in callback with a state that is not ours: refused")
      return Pages.failure(
        "This sign-in link is not the one that was started",
        "The address the browser came back with does not belong to the sign-in in progress (state mismatch)."
      )
    }
    if (yield* Ref.getAndSet(claimed, true)) {
      return Pages.failure("This sign-in is already being completed", "The browser came back twice.", 409)
    }
    const error = params.get("error")
    if (error !== null) return yield* fail(refusedError(error))
    const code = params.get("code")
    if (code === null || code.length === 0) {
      return yield* fail(new SignInError({ reason: "exchange_failed", detail: "the browser came back without a code" }))
    }
    const exchanged = yield* Effect.result(callback.withClient(exchangeCode(provider, {
      code: Redacted.make(code),
      redirectUri: `${callback.origin()}${provider.loopback.path}`,
      verifier: callback.verifier
    })))
    if (Result.isFailure(exchanged)) return yield* fail(exchanged.failure, 502)
    const saved = yield* Effect.result(context.save(exchanged.success))
    if (Result.isFailure(saved)) {
      const status = saved.failure.reason === "storage" ? 500 : 400
      return Pages.failure("The sign-in did not complete", saved.failure.message, status)
    }
    // Away from the address that carries the code.
    return Pages.redirect(`${callback.origin()}/success`)
  })
}

/** The app the loopback server serves for one browser sign-in. */
export const makeApp = Effect.fnUntraced(function*(callback: Callback) {
  const handleCallback = makeCallback(callback, yield* Ref.make(false))
  const { context, provider } = callback
  return Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const url = new URL(request.url, "http://127.0.0.1")
    if (request.method !== "GET") return Pages.notFound()
    switch (url.pathname) {
      case provider.loopback.path:
        return yield* handleCallback(url.searchParams)
      case "/success":
        yield* Deferred.succeed(context.successServed, undefined)
        return Pages.success(provider.name)
      case "/cancel":
        // An older login server's owner is told, as Codex's is.
        yield* Effect.forkIn(
          context.finish(
            Exit.fail(new SignInError({ reason: "canceled", detail: "another sign-in took over the port" }))
          ),
          callback.layerScope
        )
        return Pages.cancelled()
      default:
        return Pages.notFound()
    }
  }).pipe(
    Effect.catchCause((cause) =>
      Effect.as(
        Effect.logError("Sign-in callback failed unexpectedly", cause),
        Pages.failure("The sign-in did not complete", "Something went wrong on this computer.", 500)
      )
    )
  )
})
