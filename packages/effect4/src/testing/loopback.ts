/**
 * What the scripted servers of `./testing` share: serving an app on an
 * ephemeral port of 127.0.0.1 for the life of a scope, and reading the fields
 * of a form or JSON body.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, type Scope } from "effect"
import type { HttpServerRequest, HttpServerResponse } from "effect/http"
import { createServer } from "node:http"

/** Serves `app` on 127.0.0.1 until the scope closes; the port it listens on. */
export const serveOnLoopback = <E>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, HttpServerRequest.HttpServerRequest | Scope.Scope>
): Effect.Effect<number, never, Scope.Scope> =>
  Effect.gen(function*() {
    const node = createServer()
    // A test's server ends with its scope, whatever it is answering: no graceful shutdown (which
    // waits for open connections, on the test's clock), every connection cut once serving has stopped.
    const server = yield* NodeHttpServer.make(() => node, {
      port: 0,
      host: "127.0.0.1",
      disablePreemptiveShutdown: true
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => node.closeAllConnections()))
    // Effect 4 answers a request uninterruptibly: a scripted answer that never comes (a hanging
    // endpoint) would hold the scope open for ever.
    yield* server.serve(Effect.interruptible(app))
    return server.address._tag === "UnixPathAddress" ? 0 : server.address.port
  }).pipe(Effect.orDie)

/** The fields of a request body, form-encoded or JSON; none when it is neither. */
export const fieldsOf = (contentType: string, text: string): Record<string, string> => {
  if (contentType.includes("application/x-www-form-urlencoded")) return Object.fromEntries(new URLSearchParams(text))
  try {
    const parsed: unknown = JSON.parse(text)
    if (parsed === null || typeof parsed !== "object") return {}
    return Object.fromEntries(Object.entries(parsed).map(([key, value]) => [key, String(value)]))
  } catch {
    return {}
  }
}
