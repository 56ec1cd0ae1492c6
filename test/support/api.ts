/**
 * A protected API on 127.0.0.1 for the authorized client's tests: it records
 * the credentials each request carried, and answers as the test says
 * (200, or 401 for a refused token).
 */
import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect, Ref } from "effect"
import { serveOnLoopback } from "../../src/testing/loopback.js"

export interface ApiRequest {
  /** The bearer token, in clear: test data only. */
  readonly token: string | null
  readonly accountId: string | null
}

/** The status to answer a request with. */
export type Answer = (request: ApiRequest) => Effect.Effect<number>

export const refusing = (refused: ReadonlyArray<string>): Answer => (request) =>
  Effect.succeed(request.token !== null && !refused.includes(request.token) ? 200 : 401)

export const make = (initial: Answer) =>
  Effect.gen(function*() {
    const answer = yield* Ref.make(initial)
    const received = yield* Ref.make<ReadonlyArray<ApiRequest>>([])
    const app = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const authorization = request.headers["authorization"]
      const entry: ApiRequest = {
        token: authorization?.startsWith("Bearer ") ? authorization.slice("Bearer ".length) : null,
        accountId: request.headers["chatgpt-account-id"] ?? null
      }
      yield* Ref.update(received, (all) => [...all, entry])
      const status = yield* Effect.flatMap(Ref.get(answer), (f) => f(entry))
      return status === 401
        ? HttpServerResponse.unsafeJson({ error: "invalid_token" }, {
          status,
          headers: { "www-authenticate": "Bearer error=\"invalid_token\"" }
        })
        : HttpServerResponse.unsafeJson({ ok: true }, { status })
    })
    const port = yield* serveOnLoopback(app)
    return {
      url: `http://127.0.0.1:${port}/v1/me`,
      received: Ref.get(received),
      count: Effect.map(Ref.get(received), (all) => all.length),
      setAnswer: (next: Answer) => Ref.set(answer, next)
    }
  })
