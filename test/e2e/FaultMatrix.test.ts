/**
 * Every way the token endpoint can fail, one row each: the classification,
 * the requests that 50 polls (one a second, on the TestClock) make, and an
 * auth.json left untouched. The table in the README is this file's table.
 */
import { FileSystem } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, TestClock } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { AuthManager } from "../../src/AuthManager.js"
import { AuthStore } from "../../src/AuthStore.js"
import { httpRefresher } from "../support/endpoint.js"
import { chatgptJson } from "../support/fixtures.js"

const realPause = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))

type Handler = (request: IncomingMessage, response: ServerResponse) => void

/** A raw HTTP server on `host` that counts the requests it gets. */
const rawServer = (handler: Handler, host = "127.0.0.1") =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ url: string; count: () => number; close: () => void }>((resolve) => {
        let count = 0
        const server = createServer((request, response) => {
          count++
          handler(request, response)
        })
        server.listen(0, host, () => {
          const port = (server.address() as AddressInfo).port
          resolve({
            url: `http://${host}:${port}/oauth/token`,
            count: () => count,
            close: () => {
              server.closeAllConnections()
              server.close()
            }
          })
        })
      })
    ),
    (server) => Effect.sync(server.close)
  )

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Handler => (_, response) => {
  response.writeHead(status, { "content-type": "application/json", ...headers })
  response.end(typeof body === "string" ? body : JSON.stringify(body))
}

const hugeBody: Handler = (_, response) => {
  response.writeHead(200, { "content-type": "application/json" })
  const chunk = Buffer.alloc(64 * 1024, "x")
  let sent = 0
  const pump = () => {
    while (sent < 100 * 1024 * 1024) {
      sent += chunk.length
      if (!response.write(chunk)) return void response.once("drain", pump)
    }
    response.end()
  }
  response.on("close", () => (sent = Infinity))
  pump()
}

const resetMidResponse: Handler = (_, response) => {
  response.writeHead(200, { "content-type": "application/json", "content-length": "1000" })
  response.write(`{"access_token": "half`)
  setTimeout(() => response.socket?.destroy(), 5)
}

interface Row {
  readonly name: string
  readonly handler: Handler | "refused" | "redirect"
  readonly expected: { readonly _tag: string; readonly reason?: string; readonly kind?: string }
  /** Requests over 50 polls, one a second: [at least, at most]. */
  readonly requests: readonly [number, number]
}

const permanent = (reason: string) => ({ _tag: "PermanentRefreshError", reason })
const transient = (kind: string) => ({ _tag: "TransientRefreshError", kind })
// Full jitter under 1, 2, 4, 8, 16, 32 s ceilings: 50 s of polling hold between 2 and ~10 attempts.
const backoff = [2, 12] as const

export const rows: ReadonlyArray<Row> = [
  { name: "401 refresh_token_expired", handler: json(401, { error: { code: "refresh_token_expired" } }), expected: permanent("expired"), requests: [1, 1] },
  { name: "401 refresh_token_reused", handler: json(401, { error: { code: "refresh_token_reused" } }), expected: permanent("reused"), requests: [1, 1] },
  { name: "401 refresh_token_invalidated", handler: json(401, { error: { code: "refresh_token_invalidated" } }), expected: permanent("revoked"), requests: [1, 1] },
  { name: "400 invalid_grant", handler: json(400, { error: "invalid_grant" }), expected: permanent("invalid_grant"), requests: [1, 1] },
  { name: "401 invalid_client", handler: json(401, { error: "invalid_client" }), expected: permanent("invalid_client"), requests: [1, 1] },
  { name: "400 unauthorized_client", handler: json(400, { error: "unauthorized_client" }), expected: permanent("invalid_client"), requests: [1, 1] },
  { name: "401 with an empty body", handler: json(401, ""), expected: permanent("other"), requests: [1, 1] },
  { name: "403", handler: json(403, { error: "forbidden" }), expected: transient("status"), requests: backoff },
  { name: "404", handler: json(404, "not found"), expected: transient("status"), requests: backoff },
  { name: "408", handler: json(408, ""), expected: transient("status"), requests: backoff },
  { name: "429 Retry-After: 120 (seconds)", handler: json(429, "", { "retry-after": "120" }), expected: transient("status"), requests: [1, 1] },
  // The date is fixed: once it has passed, the ordinary backoff applies again.
  { name: "429 Retry-After: an HTTP date 30 s ahead", handler: json(429, "", { "retry-after": new Date(30_000).toUTCString() }), expected: transient("status"), requests: [2, 10] },
  { name: "429 without Retry-After", handler: json(429, ""), expected: transient("status"), requests: backoff },
  { name: "500", handler: json(500, { error: "server_error" }), expected: transient("status"), requests: backoff },
  { name: "502", handler: json(502, "<html>bad gateway</html>"), expected: transient("status"), requests: backoff },
  { name: "503", handler: json(503, ""), expected: transient("status"), requests: backoff },
  { name: "504", handler: json(504, ""), expected: transient("status"), requests: backoff },
  { name: "connection refused", handler: "refused", expected: transient("connection"), requests: [0, 0] },
  { name: "connection reset mid-response", handler: resetMidResponse, expected: transient("connection"), requests: backoff },
  { name: "no answer (30 s timeout)", handler: () => {}, expected: transient("timeout"), requests: [2, 4] },
  { name: "200 with HTML", handler: json(200, "<html>sign in</html>"), expected: transient("body"), requests: backoff },
  { name: "200 with truncated JSON", handler: json(200, `{"access_token": "a`), expected: transient("body"), requests: backoff },
  // A new refresh_token alone is a success (issue 10, item 2): only a body with no token is transient.
  { name: "200 with JSON lacking any token", handler: json(200, { token_type: "Bearer", expires_in: 3600 }), expected: transient("body"), requests: backoff },
  { name: "200 with a 100 MB body (read up to 1 MiB)", handler: hugeBody, expected: transient("body"), requests: backoff },
  { name: "302 to another host (not followed)", handler: "redirect", expected: transient("status"), requests: backoff }
]

describe("fault matrix of the token endpoint: classification, requests over 50 polls, auth.json untouched", () => {
  for (const row of rows) {
    it.scoped(row.name, () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const home = yield* fs.makeTempDirectoryScoped()
        const original = JSON.stringify(chatgptJson(), null, 2)
        yield* fs.writeFileString(`${home}/auth.json`, original)

        // Another loopback host that must never see the refresh token.
        const elsewhere = yield* rawServer(json(200, { access_token: "stolen" }), "127.0.0.2")
        const server = row.handler === "refused"
          ? { url: "http://127.0.0.1:1/oauth/token", count: () => 0 }
          : yield* rawServer(row.handler === "redirect"
            ? (_, response) => {
              response.writeHead(302, { location: elsewhere.url })
              response.end()
            }
            : row.handler)

        const layer = AuthManager.layer.pipe(
          Layer.provideMerge(Layer.merge(AuthStore.layerFileWith({ codexHome: home }), httpRefresher(server.url))),
          Layer.provide(NodeContext.layer)
        )
        yield* Effect.gen(function*() {
          const auth = yield* AuthManager
          // The first refresh waits on the real network, or on the 30 s timeout (TestClock): give it
          // half a second of real time, then move the clock past the timeout.
          const first = yield* Effect.fork(Effect.flip(auth.refresh))
          for (let waited = 0; Option.isNone(yield* Fiber.poll(first)); waited++) {
            yield* realPause
            if (waited % 100 === 99) yield* TestClock.adjust("30 seconds")
          }
          const failure = yield* Fiber.join(first)
          expect(failure).toMatchObject(row.expected)
          const polls: Array<Fiber.RuntimeFiber<unknown>> = []
          for (let second = 1; second < 50; second++) {
            yield* TestClock.adjust("1 second")
            polls.push(yield* Effect.fork(auth.getAuthStatus({ includeToken: true, refreshToken: true })))
            yield* realPause
          }
          yield* TestClock.adjust("31 seconds")
          yield* Fiber.joinAll(polls)
        }).pipe(Effect.provide(layer))

        const [min, max] = row.requests
        expect(server.count()).toBeGreaterThanOrEqual(min)
        expect(server.count()).toBeLessThanOrEqual(max)
        expect(elsewhere.count()).toBe(0)
        expect(yield* fs.readFileString(`${home}/auth.json`)).toBe(original)
      }).pipe(Effect.provide(NodeContext.layer)), { timeout: 20_000 })
  }
})
