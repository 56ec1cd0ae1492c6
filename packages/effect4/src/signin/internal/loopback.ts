/**
 * The loopback HTTP server a browser sign-in comes back to (RFC 8252 §7.3):
 * 127.0.0.1 only, scoped, on the first port of a list that can be bound.
 * Like the Codex CLI, a busy first port gets one `GET /cancel` (an older
 * login server there lets go), then retries, then the next port.
 */
import { Duration, Effect, Exit, Result, Scope } from "effect"
import { HttpMiddleware, type HttpServer, type HttpServerRequest, type HttpServerResponse } from "effect/http"
import { createServer, type IncomingMessage, type ServerOptions, type ServerResponse } from "node:http"
import type { Socket } from "node:net"
import { SignInError } from "../../errors/Errors.js"
import type { Loopback } from "../../oauth/OAuthProvider.js"
import { cancelOlderLoginServer } from "./exchange.js"

const attemptsPerPort = 10
const retryDelay = Duration.millis(200)

// A browser sends its request at once; a connection that sends nothing (a preconnect) or a header
// at a time (slowloris) is dropped after these, checked every second, even while the sign-in waits.
const serverOptions: ServerOptions = {
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 5_000,
  connectionsCheckingInterval: 1_000
}
// When the sign-in ends, a response being written (the page of the callback that ended it) is given
// this long to reach the browser; every other connection is closed at once.
const responseGrace = 5_000

const isAddressInUse = (error: { readonly cause?: unknown }) =>
  typeof error.cause === "object" && error.cause !== null && (error.cause as { code?: unknown }).code === "EADDRINUSE"

// Node's HTTP server module (and what it loads: ws) is loaded by the first sign-in, not by every
// program that imports the library.
const nodeHttpServer = Effect.promise(() => import("@effect/platform-node/NodeHttpServer"))

/**
 * Node's server, and every connection it accepted: `server.close()` alone waits for open
 * connections (a preconnect that never sends a byte, a slowloris) and stops timing them out. So
 * closing stops listening and destroys at once every connection that is not being answered; one
 * that is gets its response, then is destroyed. Nothing waits for either: a sign-in that ends
 * never waits on whoever connected to it.
 */
const makeNodeServer = () => {
  const server = createServer(serverOptions)
  const sockets = new Set<Socket>()
  const answering = new Set<Socket>()
  let closing = false
  server.on("connection", (socket: Socket) => {
    sockets.add(socket)
    socket.once("close", () => {
      sockets.delete(socket)
      answering.delete(socket)
    })
  })
  server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket
    answering.add(socket)
    response.once("close", () => {
      answering.delete(socket)
      if (closing) socket.destroy()
    })
  })
  const close = Effect.sync(() => {
    closing = true
    if (server.listening) server.close()
    for (const socket of sockets) {
      if (!answering.has(socket)) socket.destroy()
      else setTimeout(() => socket.destroy(), responseGrace).unref()
    }
  })
  return { server, close }
}

// One attempt, in a scope of its own: a failed bind leaves nothing behind.
const bindOnce = Effect.fnUntraced(function*(port: number, parent: Scope.Scope) {
  const NodeHttpServer = yield* nodeHttpServer
  const scope = yield* Scope.fork(parent, "sequential")
  const node = makeNodeServer()
  // No graceful shutdown when serving ends (it would wait up to 20 s for the connections to end):
  // `node.close` below is how this server ends them.
  const server = yield* NodeHttpServer.make(() => node.server, {
    port,
    host: "127.0.0.1",
    disablePreemptiveShutdown: true
  }).pipe(
    Scope.provide(scope),
    Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
  )
  // Added after the server's own finalizer, so it runs first: the server stops listening, its idle
  // connections are destroyed, and the server's finalizer then finds nothing to wait for.
  yield* Scope.addFinalizer(scope, node.close)
  return server
})

const portOf = (server: HttpServer.HttpServer["Service"]) =>
  server.address._tag === "UnixPathAddress" ? 0 : server.address.port

/** Binds the server and serves `app` on it for the life of `scope`; returns the port. */
export const serve = Effect.fnUntraced(function*<E>(
  loopback: Loopback,
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, HttpServerRequest.HttpServerRequest | Scope.Scope>,
  scope: Scope.Scope
) {
  let cancelSent = false
  for (const [index, port] of loopback.ports.entries()) {
    for (let attempt = 1; attempt <= attemptsPerPort; attempt++) {
      const bound = yield* Effect.result(bindOnce(port, scope))
      if (Result.isSuccess(bound)) {
        // The server's request span would record the callback's URL (`url.full`, `url.query`),
        // which carries the authorization code: no span for a request with a query.
        // Effect 4 answers a request uninterruptibly: a cancel must be able to stop a callback that
        // is still exchanging its code.
        yield* bound.success.serve(Effect.interruptible(app)).pipe(
          Effect.provideService(HttpMiddleware.TracerDisabledWhen, (request) => request.url.includes("?")),
          Scope.provide(scope)
        )
        return portOf(bound.success)
      }
      if (!isAddressInUse(bound.failure) || port === 0) break
      if (index === 0 && loopback.cancelPrevious && !cancelSent) {
        cancelSent = true
        yield* cancelOlderLoginServer(port)
      }
      yield* Effect.sleep(retryDelay)
    }
  }
  return yield* new SignInError({
    reason: "port_busy",
    detail: `127.0.0.1 ports ${loopback.ports.join(", ")} are in use`
  })
})
