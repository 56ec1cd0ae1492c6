import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import { chatgptJson, secrets } from "../support/fixtures.js"
import { appServer, cleanup, endpoint, holdFlock, spawnScript, tempHome } from "../support/processes.js"

afterEach(cleanup)

describe("example app server: starting and stopping", () => {
  it("SIGTERM during a refresh: the server waits for the answer, saves the rotated token, then exits", async () => {
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })))
    const rotating = await Effect.runPromise(TokenEndpoint.rotating(secrets.refresh))
    // Slow enough that the signal surely arrives while the request is out.
    const tokens = await endpoint((request) => Effect.zipRight(Effect.sleep("1500 millis"), rotating(request)))
    const server = await appServer({ codexHome: home, tokenUrl: tokens.url })
    server.send({ id: "refresh", method: "getAuthStatus", params: { refreshToken: true } })
    // Awaited as it arrives (the endpoint counts a request before answering it).
    await tokens.received(1).catch((e) => {
      throw new Error(`${e.message} ${server.stderr()} ${server.stdout()}`)
    })
    server.child.kill("SIGTERM")
    await server.exited
    expect(JSON.parse(readFileSync(`${home}/auth.json`, "utf8")).tokens.refresh_token).toBe("rt-1")
    expect(server.stderr()).toContain("waiting for the refresh in flight")
  })

  it("SIGTERM while a stuck Codex holds auth.json.lock: the server exits, says so in one ERROR line, and the next start adopts the rotated token", async () => {
    const home = tempHome()
    writeFileSync(`${home}/auth.json`, JSON.stringify(chatgptJson({ now: Date.now() })), { mode: 0o600 })
    // The provider rotates, and refuses a replaced refresh token (refresh_token_reused).
    const tokens = await endpoint(TokenEndpoint.rotating(secrets.refresh))
    const codex = await holdFlock(`${home}/auth.json.lock`)
    const server = await appServer({ codexHome: home, tokenUrl: tokens.url })
    // The refresh is answered; its save waits 5 s for Codex's lock and fails: the new token is served from memory.
    const refreshed = await server.request("getAuthStatus", { includeToken: true, refreshToken: true })
    expect(await tokens.count()).toBe(1)
    const rotatedAccess = refreshed.result.authToken as string
    expect(rotatedAccess).not.toBe(secrets.access)

    server.child.kill("SIGTERM")
    await server.exited
    const errors = server.stderr().split("\n").filter((line) => line.includes("level=ERROR"))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toContain("kept beside the credentials")
    expect(errors[0]).toContain("auth.json.lock: another process held it")
    expect(JSON.parse(readFileSync(`${home}/auth.json`, "utf8")).tokens.refresh_token).toBe(secrets.refresh)
    expect(statSync(`${home}/auth-pending-refresh.json`).mode & 0o777).toBe(0o600)

    // Codex lets go. The next start serves the rotated token, sends no request, and saves it.
    codex.release()
    const next = await appServer({ codexHome: home, tokenUrl: tokens.url })
    const status = await next.request("getAuthStatus", { includeToken: true, refreshToken: true })
    expect(status.result.authToken).toBe(rotatedAccess)
    expect(await next.close()).toBe(0)
    expect(await tokens.count()).toBe(1)
    expect(JSON.parse(readFileSync(`${home}/auth.json`, "utf8")).tokens).toMatchObject({
      access_token: rotatedAccess,
      refresh_token: "rt-1"
    })
    expect(existsSync(`${home}/auth-pending-refresh.json`)).toBe(false)
    expect(next.stderr()).not.toContain("refresh_token_reused")
  })

  it("a token URL that is not http(s) is a configuration error at start, said in one line; the CLI says it too", async () => {
    const home = tempHome()
    const server = spawnScript("app-server", [], {
      HOME: home,
      CODEX_HOME: home,
      CODEX_REFRESH_TOKEN_URL_OVERRIDE: "htps://auth.example.com/oauth/token"
    })
    expect(await server.exited).toBe(1)
    expect(server.stdout()).toBe("")
    expect(server.stderr()).toContain("CODEX_REFRESH_TOKEN_URL_OVERRIDE must be an http:// or https:// URL")
    // Even a plain `status`, which makes no request: every command reads the whole configuration.
    const cli = spawnScript("effect-auth", ["status"], {
      HOME: home,
      CODEX_HOME: home,
      CODEX_REFRESH_TOKEN_URL_OVERRIDE: "htps://auth.example.com/oauth/token"
    })
    expect(await cli.close()).toBe(1)
    expect(cli.stderr()).toMatch(
      /^Configuration error: .*CODEX_REFRESH_TOKEN_URL_OVERRIDE must be an http:\/\/ or https:\/\/ URL/
    )
    expect(cli.stderr()).not.toContain("    at ")
  })
})
