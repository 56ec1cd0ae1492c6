/**
 * What the scripted servers of `effect-auth-manager/testing` share: serving an
 * app on an ephemeral port of 127.0.0.1 for the life of a scope, and reading
 * the fields of a form or JSON body.
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Context, Effect, Layer, type Scope } from "effect"
import { createServer } from "node:http"

/**
 * Serves `app` on 127.0.0.1 until the scope closes; the port it listens on. Its queue of
 * connections not yet accepted holds 4,096 (Node's default, 511, is less than eight replicas each
 * opening 64 connections at once: a connection dropped from a full queue is retried by the kernel
 * only after 1, 3, 7, 15, 31 s…, longer than a refresh's timeout).
 */
export const serveOnLoopback = <E, R>(
  app: HttpApp.Default<E, R>
): Effect.Effect<number, never, Scope.Scope | Exclude<R, HttpServerRequest.HttpServerRequest | Scope.Scope>> =>
  Layer.build(
    HttpServer.serve(app).pipe(
      Layer.provideMerge(NodeHttpServer.layer(() => createServer(), { port: 0, host: "127.0.0.1", backlog: 4096 }))
    )
  ).pipe(
    Effect.map((context) => {
      const address = Context.get(context, HttpServer.HttpServer).address
      return address._tag === "TcpAddress" ? address.port : 0
    }),
    Effect.orDie
  )

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
