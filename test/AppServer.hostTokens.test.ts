import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Queue, Redacted, Stream, TestClock } from "effect"
import * as AppServer from "../src/app-server/AppServer.js"
import { AuthHttpClient } from "../src/client/AuthHttpClient.js"
import { TransientRefreshError } from "../src/errors/Errors.js"
import { AuthManager } from "../src/manager/AuthManager.js"
import { unsignedJwt } from "../src/testing/TokenEndpoint.js"
import * as Api from "./support/api.js"
import { callCount, dead, scripted } from "./support/manager.js"
import { schemaErrors } from "./support/schemas.js"

const info = { codexHome: "/tmp/codex", version: "test", platformOs: "linux", platformFamily: "unix" }
const firstToken = unsignedJwt({ email: "host@example.com", marker: "host-access-1" })
const secondToken = unsignedJwt({ email: "host@example.com", marker: "host-access-2" })
const end = "<end of input>"

/**
 * An app server over a manager with nobody signed in in storage, spoken to through queues: a
 * client that signed in with tokens it manages itself. `end` on the input closes it.
 */
const connected = Effect.gen(function*() {
  const context = yield* Layer.build(
    AuthHttpClient.layer.pipe(
      Layer.provideMerge(scripted(undefined, [dead()])),
      Layer.provideMerge(NodeHttpClient.layerUndici)
    )
  )
  const input = yield* Queue.unbounded<string>()
  const out = yield* Queue.unbounded<any>()
  const server = yield* AppServer.serve(
    Stream.fromQueue(input).pipe(Stream.takeWhile((line) => line !== end)),
    (line) => Queue.offer(out, JSON.parse(line)),
    info
  ).pipe(Effect.provide(context), Effect.forkScoped)
  const send = (message: object) => Queue.offer(input, JSON.stringify(message))
  /** The next message the server wrote that `predicate` accepts; the others are dropped. */
  const next = (predicate: (message: any) => boolean): Effect.Effect<any> =>
    Effect.flatMap(Queue.take(out), (message) => predicate(message) ? Effect.succeed(message) : next(predicate))
  yield* send({ id: "init", method: "initialize", params: {} })
  yield* next((m) => m.id === "init")
  yield* send({
    id: "login",
    method: "account/login/start",
    params: {
      type: "chatgptAuthTokens",
      accessToken: firstToken,
      chatgptAccountId: "acct_host",
      chatgptPlanType: "plus"
    }
  })
  expect((yield* next((m) => m.id === "login")).result).toEqual({ type: "chatgptAuthTokens" })
  const auth = Context.get(context, AuthManager)
  return { auth, context, send, next, out, input, server }
})

const isRefreshRequest = (message: any) => message.method === "account/chatgptAuthTokens/refresh"
const report = (auth: AuthManager["Type"], token: string) => auth.reportUnauthorized(Redacted.make(token))

describe("AppServer: tokens the client manages (chatgptAuthTokens), refreshed by asking the client", () => {
  it.scoped("a refused token: one account/chatgptAuthTokens/refresh, concurrent reports join it, the answer is adopted", () =>
    Effect.gen(function*() {
      const { auth, context, next, out, send } = yield* connected
      const reports = yield* Effect.fork(
        Effect.all(Array.from({ length: 5 }, () => report(auth, firstToken)), { concurrency: "unbounded" })
      )
      const asked = yield* next(isRefreshRequest)
      expect(asked).toEqual({
        id: 0,
        method: "account/chatgptAuthTokens/refresh",
        params: { reason: "unauthorized", previousAccountId: "acct_host" }
      })
      expect(schemaErrors("JSONRPCRequest", asked)).toEqual([])
      expect(schemaErrors("JSONRPCMessage", asked)).toEqual([])
      expect(schemaErrors("ChatgptAuthTokensRefreshParams", asked.params)).toEqual([])
      for (let i = 0; i < 100; i++) yield* Effect.yieldNow()
      // The other four joined the one request.
      expect(yield* Queue.size(out)).toBe(0)
      const answer = { accessToken: secondToken, chatgptAccountId: "acct_host_2", chatgptPlanType: "pro" }
      expect(schemaErrors("ChatgptAuthTokensRefreshResponse", answer)).toEqual([])
      yield* send({ id: asked.id, result: answer })
      expect(yield* Fiber.join(reports)).toEqual(["refreshed", "refreshed", "refreshed", "refreshed", "refreshed"])

      const credentials = yield* auth.credentials
      expect({ ...credentials, token: Redacted.value(credentials.token) }).toEqual({
        method: "chatgpt",
        token: secondToken,
        accountId: "acct_host_2"
      })
      yield* send({ id: "status", method: "getAuthStatus", params: { includeToken: true } })
      expect((yield* next((m) => m.id === "status")).result).toEqual({
        authMethod: "chatgptAuthTokens",
        authToken: secondToken,
        requiresOpenaiAuth: true
      })
      yield* send({ id: "account", method: "account/read", params: {} })
      expect((yield* next((m) => m.id === "account")).result.account).toEqual({
        type: "chatgpt",
        email: "host@example.com",
        planType: "pro"
      })
      // The refused token is no longer current: no second request to the client, and none to the token endpoint.
      expect(yield* report(auth, firstToken)).toBe("replaced")
      for (let i = 0; i < 100; i++) yield* Effect.yieldNow()
      expect(yield* Queue.size(out)).toBe(0)
      expect(yield* Effect.provide(callCount, context)).toBe(0)
    }))

  it.scoped("AuthHttpClient: a 401 for the client's token asks the client, and the request is sent again with the new one", () =>
    Effect.gen(function*() {
      const { context, next, send } = yield* connected
      const api = yield* Api.make(Api.refusing([firstToken]))
      const call = yield* Effect.fork(
        Effect.flatMap(AuthHttpClient, (client) => client.get(api.url)).pipe(Effect.provide(context))
      )
      const asked = yield* next(isRefreshRequest)
      yield* send({ id: asked.id, result: { accessToken: secondToken, chatgptAccountId: "acct_host" } })
      expect((yield* Fiber.join(call)).status).toBe(200)
      expect(yield* api.received).toEqual([
        { token: firstToken, accountId: "acct_host" },
        { token: secondToken, accountId: "acct_host" }
      ])
    }))

  it.scoped("the client answers with an error: a clear error, and the token is kept", () =>
    Effect.gen(function*() {
      const { auth, next, send } = yield* connected
      const reported = yield* Effect.fork(Effect.flip(report(auth, firstToken)))
      const asked = yield* next(isRefreshRequest)
      yield* send({ id: asked.id, error: { code: -32000, message: "the user signed out of the host" } })
      const error = yield* Fiber.join(reported)
      expect(error).toBeInstanceOf(TransientRefreshError)
      expect(error).toMatchObject({ kind: "client" })
      expect(error.message).toContain("the client answered with an error (-32000): the user signed out of the host")
      expect(error.message).toContain("must supply new tokens")
      expect(Redacted.value((yield* auth.credentials).token)).toBe(firstToken)
    }))

  it.scoped("the client does not answer: the wait ends after 10 s, and a late answer is dropped", () =>
    Effect.gen(function*() {
      const { auth, next, send } = yield* connected
      const reported = yield* Effect.fork(Effect.flip(report(auth, firstToken)))
      const asked = yield* next(isRefreshRequest)
      yield* TestClock.adjust("9999 millis")
      expect(yield* Fiber.poll(reported)).toMatchObject({ _tag: "None" })
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(reported)
      expect(error.message).toContain("did not answer the refresh request within 10s")
      yield* send({ id: asked.id, result: { accessToken: secondToken, chatgptAccountId: "acct_host" } })
      yield* send({ id: "after", method: "getAuthStatus", params: { includeToken: true } })
      expect((yield* next((m) => m.id === "after")).result.authToken).toBe(firstToken)
      // A new refusal asks again: the next request is numbered 1.
      const again = yield* Effect.fork(report(auth, firstToken))
      expect((yield* next(isRefreshRequest)).id).toBe(1)
      yield* send({ id: 1, result: { accessToken: secondToken, chatgptAccountId: "acct_host" } })
      expect(yield* Fiber.join(again)).toBe("refreshed")
    }))

  it.scoped("an answer that is not a ChatgptAuthTokensRefreshResponse: a clear error", () =>
    Effect.gen(function*() {
      const { auth, next, send } = yield* connected
      const reported = yield* Effect.fork(Effect.flip(report(auth, firstToken)))
      const asked = yield* next(isRefreshRequest)
      yield* send({ id: asked.id, result: { accessToken: 42 } })
      expect((yield* Fiber.join(reported)).message).toMatch(/the client's answer is not valid: .*accessToken/)
    }))

  it.scoped("the client goes away: a waiting report fails at once, and later ones say it is gone", () =>
    Effect.gen(function*() {
      const { auth, input, next, server } = yield* connected
      const reported = yield* Effect.fork(Effect.flip(report(auth, firstToken)))
      yield* next(isRefreshRequest)
      yield* Queue.offer(input, end)
      expect((yield* Fiber.join(reported)).message).toContain("the client disconnected before answering")
      yield* Fiber.join(server)
      expect((yield* Effect.flip(report(auth, firstToken))).message).toContain("the client is no longer connected")
    }))

  it.scoped("sign-out forgets the client's tokens: a 401 then goes through the stored credentials (here none)", () =>
    Effect.gen(function*() {
      const { auth, next, send } = yield* connected
      yield* send({ id: "logout", method: "account/logout" })
      yield* next((m) => m.id === "logout")
      expect(yield* report(auth, firstToken)).toBe("replaced")
      expect((yield* Effect.flip(auth.credentials))._tag).toBe("CredentialsUnavailableError")
    }))
})
