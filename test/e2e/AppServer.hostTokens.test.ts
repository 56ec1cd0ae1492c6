import { afterEach, describe, expect, it } from "@effect/vitest"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { unsignedJwt } from "../../src/testing/TokenEndpoint.js"
import { cleanup, type RunningProcess, spawnScript, tempHome } from "../support/processes.js"
import { schemaErrors } from "../support/schemas.js"

afterEach(cleanup)

const tokens = [1, 2, 3].map((n) => unsignedJwt({ email: "host@example.com", marker: `host-access-${n}` }))

/** An API on 127.0.0.1 that refuses the tokens in `refused` (401) and records what each request carried. */
const api = async (refused: Set<string>) => {
  const received: Array<{ token: string | null; accountId: string | null }> = []
  const listeners = new Set<() => void>()
  const server = createServer((request, response) => {
    const authorization = request.headers.authorization ?? ""
    const token = authorization.startsWith("Bearer ") ? authorization.slice(7) : null
    const accountId = request.headers["chatgpt-account-id"]
    received.push({ token, accountId: typeof accountId === "string" ? accountId : null })
    response.writeHead(token !== null && !refused.has(token) ? 200 : 401, { "content-type": "application/json" })
    response.end("{}")
    for (const listener of listeners) listener()
  })
  /** Resolves once `predicate` holds of what the API has received (checked as each request is answered). */
  const receivedWhen = (predicate: (all: typeof received) => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!predicate(received)) return
        listeners.delete(check)
        resolve()
      }
      listeners.add(check)
      check()
    })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/v1/me`,
    received,
    receivedWhen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

/** Resolves with the match once the process has written a line matching `pattern` to stderr. */
const stderrMatch = (server: RunningProcess, pattern: RegExp, timeoutMs = 15_000) =>
  new Promise<RegExpExecArray>((resolve, reject) => {
    const check = () => {
      const match = pattern.exec(server.stderr())
      if (match === null) return
      clearTimeout(timer)
      server.child.stderr.off("data", check)
      resolve(match)
    }
    const timer = setTimeout(
      () => reject(new Error(`no ${pattern} on stderr: ${server.stderr().slice(-2000)}`)),
      timeoutMs
    )
    server.child.stderr.on("data", check)
    check()
  })

const isRefreshRequest = (message: { readonly method?: string }) =>
  message.method === "account/chatgptAuthTokens/refresh"

describe("a host app's own server (the library's AppServer and AuthHttpClient in one process): tokens the client manages", () => {
  it("a 401 asks the client over stdio (account/chatgptAuthTokens/refresh), once for concurrent 401s; the answer is used; an error answer ends in the API's 401", async () => {
    const home = tempHome()
    const refused = new Set([tokens[0]!])
    const protectedApi = await api(refused)
    const server = spawnScript("host-app-server", [], { HOME: home, CODEX_HOME: home, API_URL: protectedApi.url })
    const port = Number((await stderrMatch(server, /calls on port (\d+)/))[1])
    const call = () =>
      fetch(`http://127.0.0.1:${port}/call`).then((response) => response.json() as Promise<{ status?: number }>)

    expect((await server.request("initialize", { clientInfo: { name: "host", version: "1.0.0" } })).result)
      .toBeDefined()
    const login = await server.request("account/login/start", {
      type: "chatgptAuthTokens",
      accessToken: tokens[0],
      chatgptAccountId: "acct_host",
      chatgptPlanType: "plus"
    })
    expect(login.result).toEqual({ type: "chatgptAuthTokens" })

    // One call: refused, the client is asked, the call is sent again with its new token.
    const first = call()
    const asked = await server.waitFor(isRefreshRequest)
    expect(asked).toEqual({
      id: 0,
      method: "account/chatgptAuthTokens/refresh",
      params: { reason: "unauthorized", previousAccountId: "acct_host" }
    })
    expect(schemaErrors("JSONRPCRequest", asked)).toEqual([])
    expect(schemaErrors("ChatgptAuthTokensRefreshParams", asked.params)).toEqual([])
    server.send({
      id: asked.id,
      result: { accessToken: tokens[1], chatgptAccountId: "acct_host", chatgptPlanType: "plus" }
    })
    expect(await first).toEqual({ status: 200 })
    expect(protectedApi.received).toEqual([
      { token: tokens[0], accountId: "acct_host" },
      { token: tokens[1], accountId: "acct_host" }
    ])

    // Three calls at once, all refused: one request to the client, and all three succeed after it.
    refused.add(tokens[1]!)
    const three = [call(), call(), call()]
    const second = await server.waitFor((m) => isRefreshRequest(m) && m.id === 1)
    // All three were refused before the client answers (the retry of the first call, then the three).
    await protectedApi.receivedWhen((all) => all.filter((r) => r.token === tokens[1]).length === 4)
    server.send({ id: second.id, result: { accessToken: tokens[2], chatgptAccountId: "acct_host" } })
    expect(await Promise.all(three)).toEqual([{ status: 200 }, { status: 200 }, { status: 200 }])
    expect(server.messages.filter(isRefreshRequest)).toHaveLength(2)
    expect(protectedApi.received.filter((r) => r.token === tokens[1])).toHaveLength(4)
    expect(protectedApi.received.filter((r) => r.token === tokens[2])).toHaveLength(3)

    // The client has no answer: the call ends with the API's 401, and the error is logged clearly.
    refused.add(tokens[2]!)
    const refusedCall = call()
    const third = await server.waitFor((m) => isRefreshRequest(m) && m.id === 2)
    server.send({ id: third.id, error: { code: -32000, message: "signed out of the host" } })
    expect(await refusedCall).toEqual({ status: 401 })
    expect(server.stderr()).toMatch(
      /The client did not refresh the tokens it supplied.*the client answered with an error \(-32000\): signed out of the host/
    )
    const status = await server.request("getAuthStatus", { includeToken: true })
    expect(status.result).toEqual({ authMethod: "chatgptAuthTokens", authToken: tokens[2], requiresOpenaiAuth: true })

    expect(await server.close()).toBe(0)
    await protectedApi.close()
    for (const token of tokens) expect(server.stderr()).not.toContain(token)
  })
})
