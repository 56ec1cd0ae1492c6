import { afterEach, describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { writeFileSync } from "node:fs"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { chatgptJson, secrets } from "../support/fixtures.js"
import { appServer, cleanup, endpoint, type Message, spawnScript, tempHome } from "../support/processes.js"
import { schemaErrors } from "../support/schemas.js"

afterEach(cleanup)

const expectValid = (schema: string, value: unknown) => expect(schemaErrors(schema, value)).toEqual([])

/** A response validates as the envelope and its result as `resultSchema`. */
const expectResponse = (message: Message, resultSchema?: string) => {
  expectValid("JSONRPCResponse", message)
  expectValid("JSONRPCMessage", message)
  expect(message).not.toHaveProperty("jsonrpc")
  if (resultSchema !== undefined) expectValid(resultSchema, message.result)
}

const expectError = (message: Message, code: number) => {
  expect(message.error?.code).toBe(code)
  expect(typeof message.error?.message).toBe("string")
  if (message.id !== null) expectValid("JSONRPCError", message)
}

describe("example app server: the Codex app-server protocol over stdio", () => {
  it("initialize answers an InitializeResponse; requests before it get Not initialized", async () => {
    const home = tempHome()
    const server = spawnScript("app-server", [], { HOME: home, CODEX_HOME: home })
    const early = await server.request("getAuthStatus", {}, "early")
    expectError(early, -32600)
    expect(early.error?.message).toBe("Not initialized")
    const init = await server.request("initialize", { clientInfo: { name: "codex-vscode", version: "1.2.3" } }, 0)
    expectResponse(init, "v1/InitializeResponse")
    expect(init.id).toBe(0)
    expect(init.result.codexHome).toBe(home)
    expect(init.result.userAgent).toContain("codex-vscode/1.2.3")
    expectError(await server.request("initialize", {}), -32600)
    expect(await server.close()).toBe(0)
  })

  it("string and numeric ids come back exactly as sent", async () => {
    const server = await appServer({ codexHome: tempHome() })
    for (const id of ["abc", "", "42", 7, 0, -3, Number.MAX_SAFE_INTEGER]) {
      const response = await server.request("getAuthStatus", {}, id)
      expect(response.id).toStrictEqual(id)
      expectResponse(response)
    }
  })

  it("getAuthStatus, account/read, login, logout, with account/updated notifications", async () => {
    const home = tempHome()
    const server = await appServer({ codexHome: home })
    expect((await server.request("getAuthStatus", { includeToken: true })).result).toEqual({
      authMethod: null,
      authToken: null,
      requiresOpenaiAuth: true
    })
    const loggedOut = await server.request("account/read", {})
    expectResponse(loggedOut, "v2/GetAccountResponse")
    expect(loggedOut.result).toEqual({ account: null, requiresOpenaiAuth: true })

    const login = await server.request("account/login/start", { type: "apiKey", apiKey: secrets.apiKey })
    expectResponse(login, "v2/LoginAccountResponse")
    expect(login.result).toEqual({ type: "apiKey" })
    const updated = await server.waitFor((m) => m.method === "account/updated" && m.params.authMode === "apikey")
    expectValid("JSONRPCNotification", updated)
    expectValid("v2/AccountUpdatedNotification", updated.params)

    expect((await server.request("getAuthStatus", { includeToken: true })).result).toEqual({
      authMethod: "apikey",
      authToken: secrets.apiKey,
      requiresOpenaiAuth: true
    })
    expect((await server.request("getAuthStatus", {})).result.authToken).toBeNull()
    const account = await server.request("account/read", { refreshToken: false })
    expectResponse(account, "v2/GetAccountResponse")
    expect(account.result.account).toEqual({ type: "apiKey" })

    const external = await server.request("account/login/start", {
      type: "chatgptAuthTokens",
      accessToken: secrets.access,
      chatgptAccountId: "acct_9",
      chatgptPlanType: "pro"
    })
    expectResponse(external, "v2/LoginAccountResponse")
    const externalUpdate = await server.waitFor((m) => m.params?.authMode === "chatgptAuthTokens")
    expectValid("v2/AccountUpdatedNotification", externalUpdate.params)
    expect(externalUpdate.params.planType).toBe("pro")
    expect((await server.request("getAuthStatus", { includeToken: true })).result).toEqual({
      authMethod: "chatgptAuthTokens",
      authToken: secrets.access,
      requiresOpenaiAuth: true
    })
    const externalAccount = await server.request("account/read", {})
    expectResponse(externalAccount, "v2/GetAccountResponse")

    const logout = await server.request("account/logout")
    expectResponse(logout, "v2/LogoutAccountResponse")
    const loggedOutUpdate = await server.waitFor((m) => m.method === "account/updated" && m.params.authMode === null)
    expectValid("v2/AccountUpdatedNotification", loggedOutUpdate.params)
    expect((await server.request("getAuthStatus", {})).result.authMethod).toBeNull()
  })

  it("pipelined: a sign-in written back to back with getAuthStatus is seen by it; answers and notifications validate", async () => {
    const server = await appServer({ codexHome: tempHome() })
    for (const round of [1, 2, 3]) {
      server.write(
        [
          JSON.stringify({
            id: `login-${round}`,
            method: "account/login/start",
            params: { type: "apiKey", apiKey: secrets.apiKey }
          }),
          JSON.stringify({ id: `status-${round}`, method: "getAuthStatus", params: {} }),
          JSON.stringify({ id: `logout-${round}`, method: "account/logout" }),
          JSON.stringify({ id: `after-${round}`, method: "getAuthStatus", params: {} })
        ].join("\n") + "\n"
      )
      const status = await server.waitFor((m) => m.id === `status-${round}`)
      expect(status.result.authMethod).toBe("apikey")
      const after = await server.waitFor((m) => m.id === `after-${round}`)
      expect(after.result.authMethod).toBeNull()
    }
    const kinds = server.messages.map((m) => m.method ?? m.id)
    const login = kinds.indexOf("login-1")
    expect(kinds.slice(login, login + 3)).toEqual(["login-1", "account/login/completed", "account/updated"])
    for (const message of server.messages) {
      expectValid("JSONRPCMessage", message)
      if (message.method === "account/login/completed") {
        expectValid("v2/AccountLoginCompletedNotification", message.params)
        expect(message.params).toEqual({ loginId: null, success: true, error: null })
      }
      if (message.method === "account/updated") expectValid("v2/AccountUpdatedNotification", message.params)
    }
    expect(await server.close()).toBe(0)
  })

  it("account/read of a Codex ChatGPT login: email and plan from the id_token", async () => {
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now(), expiresIn: 3_600_000 })))
    const server = await appServer({ codexHome: home })
    const account = await server.request("account/read", {})
    expectResponse(account, "v2/GetAccountResponse")
    expect(account.result).toEqual({
      account: { type: "chatgpt", email: "ada@example.com", planType: "plus" },
      requiresOpenaiAuth: true
    })
    const status = await server.request("getAuthStatus", { includeToken: true })
    expect(status.result.authMethod).toBe("chatgpt")
    expect(status.result.authToken).toMatch(/^eyJ/)
  })

  it("answers every kind of bad input with the right code, and keeps serving", async () => {
    const server = await appServer({ codexHome: tempHome() })
    const errors: Array<[string, number]> = [
      ["{\"id\": \"p1\", \"method\": \"getAuthStatus\", broken", -32700],
      [JSON.stringify({ id: 1 }), -32600],
      [JSON.stringify({ id: 2, method: 17 }), -32600]
    ]
    for (const [line, code] of errors) {
      const before = server.messages.length
      server.write(`${line}\n`)
      const answer = await server.waitFor((m) => server.messages.indexOf(m) >= before)
      expectError(answer, code)
    }
    // The Codex schema has no error without an id: these are logged on stderr, and the server goes on.
    const unanswerable = [
      "{not json",
      "[1, 2, 3]",
      "42",
      "\"a string\"",
      "null",
      JSON.stringify({ id: { nested: true }, method: "getAuthStatus" }),
      JSON.stringify({ id: 1.5, method: "getAuthStatus" })
    ]
    const before = server.messages.length
    server.write(unanswerable.map((line) => `${line}\n`).join(""))
    expectResponse(await server.request("getAuthStatus", {}, "probe"))
    expect(server.messages.slice(before).map((m) => m.id)).toEqual(["probe"])
    expect(server.stderr().match(/Ignored a line/g)?.length).toBe(unanswerable.length)
    // A line over the 4 MiB limit is refused (with its id) without being held, and the next one is served.
    const huge = await server.request("getAuthStatus", { padding: "x".repeat(5 * 1024 * 1024) }, "huge")
    expectError(huge, -32600)
    expect(huge.error?.message).toContain("more than this server reads")
    expectError(await server.request("no/such/method", {}), -32601)
    expectError(await server.request("getAuthStatus", { includeToken: "yes" }), -32602)
    expectError(await server.request("getAuthStatus", [1]), -32602)
    expectError(await server.request("account/login/start", { type: "apiKey" }), -32602)
    expectError(await server.request("account/login/start", { type: "apiKey", apiKey: 5 }), -32602)
    expectError(await server.request("account/login/start", { type: "chatgptAuthTokens" }), -32602)
    expectError(await server.request("account/read", { refreshToken: 1 }), -32602)

    // A response to a request of ours and an unknown notification are ignored.
    server.write(`${JSON.stringify({ id: 99, result: {} })}\n${JSON.stringify({ method: "whatever" })}\n`)
    // A 1 MiB line.
    const big = await server.request("getAuthStatus", { padding: "x".repeat(1024 * 1024) }, "big")
    expectResponse(big)
    const after = await server.request("getAuthStatus", {}, "after")
    expectResponse(after)
    expect(server.messages.some((m) => m.method === "<not json>")).toBe(false)
    expect(server.messages.some((m) => m.id === 99)).toBe(false)
    expect(await server.close()).toBe(0)
    expect(server.stderr()).not.toContain(secrets.apiKey)
  })

  it("random bytes and random JSON (fast-check samples) never stop the real process", async () => {
    const server = await appServer({ codexHome: tempHome() })
    const garbage = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes.filter((b) => b !== 10))),
        fc.jsonValue().map((value) => Buffer.from(JSON.stringify(value))),
        fc.record({ id: fc.oneof(fc.string(), fc.integer()), method: fc.string(), params: fc.jsonValue() })
          .map((m) => Buffer.from(JSON.stringify(m)))
      ),
      { numRuns: 500, seed: 42 }
    )
    server.child.stdin.write(Buffer.concat(garbage.flatMap((bytes) => [bytes, Buffer.from("\n")])))
    const alive = await server.request("getAuthStatus", {}, "still-alive")
    expectResponse(alive)
    expect(server.messages.some((m) => m.method === "<not json>")).toBe(false)
    expect(await server.close()).toBe(0)
  })

  it("50 getAuthStatus written before any answer is read are answered in request order, with one token request", async () => {
    const home = tempHome()
    // Expired: the first request starts the refresh, the other 49 join it.
    const stale = chatgptJson({ now: Date.now(), expiresIn: -60_000, refreshToken: "rt-0" })
    writeFileSync(`${home}/auth.json`, JSON.stringify(stale))
    const tokens = await endpoint(TokenEndpoint.rotating("rt-0"))
    const server = spawnScript("app-server", [], {
      HOME: home,
      CODEX_HOME: home,
      CODEX_REFRESH_TOKEN_URL_OVERRIDE: tokens.url
    })
    const ids = Array.from({ length: 50 }, (_, i) => i + 1)
    server.write(
      [
        JSON.stringify({ id: 0, method: "initialize", params: {} }),
        ...ids.map((id) => JSON.stringify({ id, method: "getAuthStatus", params: { includeToken: true } }))
      ].join("\n") + "\n"
    )
    await server.waitFor((m) => m.id === 50 && m.method === undefined)
    const answers = server.messages.filter((m) => m.method === undefined && m.id !== 0)
    expect(answers.map((m) => m.id)).toEqual(ids)
    expect(new Set(answers.map((m) => m.result.authToken)).size).toBe(1)
    expect(answers[0]!.result.authToken).not.toBe((stale.tokens as { access_token: string }).access_token)
    expect(await tokens.count()).toBe(1)
    expect(await server.close()).toBe(0)
  })

  it("a closed stdin ends it cleanly, after answering what it was sent", async () => {
    const server = await appServer({ codexHome: tempHome() })
    server.send({ id: "last", method: "getAuthStatus", params: {} })
    expect(await server.close()).toBe(0)
    expect(server.messages.some((m) => m.id === "last" && m.result !== undefined)).toBe(true)
  })
})
