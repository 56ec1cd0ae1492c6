/**
 * A real OAuth token endpoint on 127.0.0.1 for tests, demos and benchmarks:
 * an `HttpServer` whose answers are scripted and whose requests are counted.
 * Published as `effect-auth-manager/testing` so users can test their own
 * servers against it.
 */
import * as TestIssuer from "@effect-auth-manager/core/testIssuer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Clock, Effect, Ref } from "effect"
import { fieldsOf, serveOnLoopback } from "./loopback.js"

/** One request the endpoint received. It holds the refresh token in clear: test data only. */
export interface ReceivedRequest {
  readonly index: number
  /** When it arrived, in epoch milliseconds (wall clock). */
  readonly at: number
  readonly contentType: string
  readonly fields: Readonly<Record<string, string>>
}

/** How the endpoint answers a request. */
export type Behaviour = (request: ReceivedRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse>

export interface TokenEndpoint {
  /** The token URL, `http://127.0.0.1:PORT/oauth/token`. */
  readonly url: string
  readonly requests: Effect.Effect<ReadonlyArray<ReceivedRequest>>
  readonly count: Effect.Effect<number>
  readonly setBehaviour: (behaviour: Behaviour) => Effect.Effect<void>
}

/** An OAuth error answer (RFC 6749 §5.2 shape). */
export const oauthError = (status: number, error: string, headers: Record<string, string> = {}): Behaviour => () =>
  Effect.succeed(
    HttpServerResponse.unsafeJson({ error, error_description: `test endpoint: ${error}` }, { status, headers })
  )

/** The Codex/OpenAI error shape: `{"error": {"code": …}}`. */
export const codedError = (status: number, code: string): Behaviour => () =>
  Effect.succeed(HttpServerResponse.unsafeJson({ error: { code, message: `test endpoint: ${code}` } }, { status }))

/** A JWT with the given payload and no valid signature: claims are read, never verified. */
export const unsignedJwt: (payload: Record<string, unknown>) => string = TestIssuer.unsignedJwt

/**
 * A healthy provider that rotates refresh tokens: each valid refresh token
 * works once and is replaced; using one again answers `refresh_token_reused`.
 * Access tokens are JWTs valid for `lifetimeSeconds`; `idToken: false` leaves the
 * (unsigned) id_token out, as a plain OAuth 2.0 provider would.
 */
export const rotating = (
  firstRefreshToken: string,
  lifetimeSeconds = 3600,
  options: { readonly idToken?: boolean } = {}
): Effect.Effect<Behaviour> =>
  Effect.map(
    Ref.make(TestIssuer.rotation(firstRefreshToken)),
    (tokens) => (request) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const presented = request.fields.refresh_token ?? ""
        const answer = yield* Ref.modify(tokens, TestIssuer.present(presented))
        if (answer === "reused") {
          return HttpServerResponse.unsafeJson({ error: { code: "refresh_token_reused" } }, { status: 401 })
        }
        if (answer === "unknown") return HttpServerResponse.unsafeJson({ error: "invalid_grant" }, { status: 400 })
        return HttpServerResponse.unsafeJson({
          token_type: "Bearer",
          access_token: unsignedJwt({ exp: Math.floor(now / 1000) + lifetimeSeconds, n: answer }),
          refresh_token: `rt-${answer}`,
          // An OpenID client verifies an id_token's signature: a plain OAuth provider sends none.
          ...(options.idToken === false ? {} : { id_token: unsignedJwt({ email: "user@example.com" }) }),
          expires_in: lifetimeSeconds
        })
      })
  )

/** Starts the endpoint on an ephemeral port of 127.0.0.1 for the life of the scope. */
export const make = (initial: Behaviour) =>
  Effect.gen(function*() {
    const behaviour = yield* Ref.make(initial)
    const received = yield* Ref.make<ReadonlyArray<ReceivedRequest>>([])
    const app = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const contentType = request.headers["content-type"] ?? ""
      const fields = fieldsOf(contentType, yield* request.text)
      const at = Date.now()
      const entry = yield* Ref.modify(received, (all) => {
        const next: ReceivedRequest = { index: all.length, at, contentType, fields }
        return [next, [...all, next]]
      })
      return yield* Effect.flatMap(Ref.get(behaviour), (answer) => answer(entry))
    }).pipe(Effect.catchAll(() => Effect.succeed(HttpServerResponse.text("bad request", { status: 400 }))))

    const port = yield* serveOnLoopback(app)
    return {
      url: `http://127.0.0.1:${port}/oauth/token`,
      requests: Ref.get(received),
      count: Effect.map(Ref.get(received), (all) => all.length),
      setBehaviour: (next) => Ref.set(behaviour, next)
    } satisfies TokenEndpoint
  })
