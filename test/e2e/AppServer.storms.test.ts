import { afterEach, describe, expect, it } from "@effect/vitest"
import { writeFileSync } from "node:fs"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { chatgptJson, secrets } from "../support/fixtures.js"
import { appServer, cleanup, endpoint, type RunningProcess, tempHome } from "../support/processes.js"

afterEach(cleanup)

const calls = 50

/** A server on a fresh CODEX_HOME holding `auth`, refreshing against `behaviour`. */
const setUp = async (
  behaviour: TokenEndpoint.Behaviour | Parameters<typeof endpoint>[0],
  auth: Record<string, unknown> = chatgptJson({ now: Date.now() })
) => {
  const tokens = await endpoint(behaviour)
  const home = tempHome()
  writeFileSync(`${home}/auth.json`, JSON.stringify(auth))
  const server = await appServer({ codexHome: home, tokenUrl: tokens.url })
  return { tokens, home, server }
}

const pollSequentially = async (server: RunningProcess, params: object, count = calls, gapMs = 0) => {
  const answers: Array<any> = []
  for (let i = 0; i < count; i++) {
    answers.push((await server.request("getAuthStatus", params)).result)
    if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs))
  }
  return answers
}

describe("storms, counted at a token endpoint on 127.0.0.1", () => {
  it("a dead refresh token polled with refreshToken: true makes 1 request; the method stays, the token is withheld", async () => {
    const { server, tokens } = await setUp(TokenEndpoint.codedError(401, "refresh_token_reused"))
    const answers = await pollSequentially(server, { includeToken: true, refreshToken: true })
    expect(await tokens.count()).toBe(1)
    expect(answers.every((a) => a.authMethod === "chatgpt" && a.authToken === null)).toBe(true)
    // The poisoning was logged, to stderr: stdout carries protocol lines only.
    expect(server.stderr()).toContain("Refresh token is dead")
    expect(server.messages.filter((m) => m.method === "<not json>")).toEqual([])
  })

  it("50 requests written before any answer is read: 1 request", async () => {
    const { server, tokens } = await setUp(TokenEndpoint.codedError(401, "refresh_token_expired"))
    const ids = Array.from({ length: calls }, (_, i) => `burst-${i}`)
    server.write(
      ids.map((id) =>
        `${JSON.stringify({ id, method: "getAuthStatus", params: { includeToken: true, refreshToken: true } })}\n`
      ).join("")
    )
    const answers = await Promise.all(ids.map((id) => server.waitFor((m) => m.id === id)))
    expect(answers.every((a) => a.result.authMethod === "chatgpt" && a.result.authToken === null)).toBe(true)
    expect(await tokens.count()).toBe(1)
  })

  it("RFC 6749 400 invalid_grant: 1 request", async () => {
    const { server, tokens } = await setUp(TokenEndpoint.oauthError(400, "invalid_grant"))
    await pollSequentially(server, { includeToken: true, refreshToken: true })
    expect(await tokens.count()).toBe(1)
  })

  it("a stale token polled without refreshToken: 1 request, then the fresh token is served", async () => {
    const { server, tokens } = await setUp(
      TokenEndpoint.rotating(secrets.refresh),
      chatgptJson({ now: Date.now(), expiresIn: 60_000 })
    )
    const answers = await pollSequentially(server, { includeToken: true })
    expect(await tokens.count()).toBe(1)
    expect(new Set(answers.map((a) => a.authToken)).size).toBe(1)
    expect(answers[0].authToken).not.toContain("SECRET")
  })

  it("a healthy rotating endpoint polled with refreshToken: true: 1 request per minimum interval", async () => {
    const { server, tokens } = await setUp(TokenEndpoint.rotating(secrets.refresh))
    await pollSequentially(server, { includeToken: true, refreshToken: true })
    expect(await tokens.count()).toBe(1)
  })

  it("a 500 outage: requests bounded by the backoff, not by the number of polls", async () => {
    const { server, tokens } = await setUp(TokenEndpoint.codedError(500, "server_error"))
    const answers = await pollSequentially(server, { includeToken: true, refreshToken: true }, calls, 20)
    // A retry 1 to 1.1 s after each of the first ten failures: about 1 s of polling leaves room for a few at most.
    expect(await tokens.count()).toBeGreaterThanOrEqual(1)
    expect(await tokens.count()).toBeLessThanOrEqual(6)
    // The cached token keeps being served through the outage.
    expect(answers.every((a) => a.authToken === secrets.access)).toBe(true)
  })

  it("auth.json rewritten by another process after the failure: the new token is served, with no extra request", async () => {
    const { server, tokens, home } = await setUp(TokenEndpoint.codedError(401, "refresh_token_reused"))
    await pollSequentially(server, { includeToken: true, refreshToken: true }, 5)
    expect(await tokens.count()).toBe(1)
    writeFileSync(
      `${home}/auth.json`,
      JSON.stringify(
        chatgptJson({
          now: Date.now(),
          refreshedAgo: 0,
          accessToken: "new-login-access",
          refreshToken: "new-login-refresh"
        })
      )
    )
    const updated = await server.waitFor((m) => m.method === "account/updated", 5_000)
    expect(updated.params.authMode).toBe("chatgpt")
    const answers = await pollSequentially(server, { includeToken: true, refreshToken: true }, calls - 5)
    expect(answers.map((a) => a.authToken).filter((t) => t !== "new-login-access")).toEqual([])
    expect(await tokens.count()).toBe(1)
  })
})
