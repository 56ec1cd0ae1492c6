/**
 * The loopback HTTP server a browser sign-in comes back to (RFC 8252 §7.3):
 * 127.0.0.1 only, scoped, on the first port of a list that can be bound.
 * Like the Codex CLI, a busy first port gets one `GET /cancel` (an older
 * login server there lets go), then retries, then the next port.
 */
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import type * as HttpServer from "@effect/platform/HttpServer"
import { Duration, Effect, ExecutionStrategy, Exit, Scope } from "effect"
import { createServer } from "node:http"
import { SignInError } from "../../errors/Errors.js"
import type { Loopback } from "../../oauth/OAuthProvider.js"
import { cancelOlderLoginServer } from "./exchange.js"

const attemptsPerPort = 10
const retryDelay = Duration.millis(200)

const isAddressInUse = (error: { readonly cause: unknown }) =>
  typeof error.cause === "object" && error.cause !== null && (error.cause as { code?: unknown }).code === "EADDRINUSE"

// Node's HTTP server module (and what it loads: undici, ws) is loaded by the first sign-in, not by
// every program that imports the library.
const nodeHttp = Effect.promise(() => import("../../util/nodeHttp.js"))

// One attempt, in a scope of its own: a failed bind leaves nothing behind.
const bindOnce = (port: number, parent: Scope.Scope) =>
  Effect.gen(function*() {
    const NodeHttp = yield* nodeHttp
    const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
    return yield* NodeHttp.makeServer(() => createServer(), { port, host: "127.0.0.1" }).pipe(
      Scope.extend(scope),
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
    )
  })

/**
 * Binds the server and serves `app` on it for the life of `scope`; returns the port.
 */
export const serve = <E>(loopback: Loopback, app: HttpApp.Default<E, never>, scope: Scope.Scope) =>
  Effect.gen(function*() {
    let cancelSent = false
    for (const [index, port] of loopback.ports.entries()) {
      for (let attempt = 1; attempt <= attemptsPerPort; attempt++) {
        const bound = yield* Effect.either(bindOnce(port, scope))
        if (bound._tag === "Right") {
          // The server's request span would record the callback's URL (`url.full`, `url.query`),
          // which carries the authorization code: no span for a request with a query.
          yield* bound.right.serve(app).pipe(
            HttpMiddleware.withTracerDisabledWhenEffect((request) => request.url.includes("?")),
            Scope.extend(scope)
          )
          return portOf(bound.right)
        }
        if (!isAddressInUse(bound.left) || port === 0) break
        if (index === 0 && loopback.cancelPrevious && !cancelSent) {
          cancelSent = true
          yield* cancelOlderLoginServer(port)
        }
        yield* Effect.sleep(retryDelay)
      }
    }
    return yield* new SignInError({ reason: "port_busy", detail: `127.0.0.1 ports ${loopback.ports.join(", ")} are in use` })
  })

const portOf = (server: HttpServer.HttpServer) => server.address._tag === "TcpAddress" ? server.address.port : 0
