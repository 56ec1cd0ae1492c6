/**
 * Sign-in through the real app-server process, Codex profile, against the
 * scripted Codex issuer of `effect-auth-manager/testing`. The browser is
 * played by plain HTTP requests that follow the redirects.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { readFileSync, statSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import * as CodexIssuer from "../../src/testing/CodexIssuer.js"
import { record, recordSecret } from "../support/audit.js"
import { appServer, cleanup, type Message, type RunningProcess, spawnScript, tempHome } from "../support/processes.js"
import { schemaErrors } from "../support/schemas.js"

let issuer: CodexIssuer.CodexIssuer
const scope = Effect.runSync(Scope.make())
beforeAll(async () => {
  issuer = await Effect.runPromise(CodexIssuer.make({ deviceInterval: 1 }).pipe(Scope.extend(scope)))
})
afterAll(async () => {
  // What the issuer was sent that carries no SECRET marker (verifiers) must appear in no output either.
  for (const request of await Effect.runPromise(issuer.received)) {
    recordSecret(
      ...["code", "code_verifier", "refresh_token", "device_auth_id"].flatMap((key) => request.fields[key] ?? [])
    )
  }
  await Effect.runPromise(Scope.close(scope, Exit.void))
})
afterEach(cleanup)

const expectValid = (schema: string, value: unknown) => expect(schemaErrors(schema, value)).toEqual([])

/** A free port of 127.0.0.1 (bound, then released), or a server holding one. */
const holdPort = () =>
  new Promise<Server>((resolve) => {
    const server = createServer((_request, response) => response.writeHead(404).end("not a login server"))
    server.listen(0, "127.0.0.1", () => resolve(server))
  })
const portOf = (server: Server) => (server.address() as AddressInfo).port
const freePort = async () => {
  const server = await holdPort()
  const port = portOf(server)
  await new Promise((resolve) => server.close(resolve))
  return port
}

const start = async (options: { readonly ports?: string; readonly home?: string } = {}) => {
  const home = options.home ?? tempHome()
  const server = await appServer({
    codexHome: home,
    tokenUrl: issuer.tokenUrl,
    env: { CODEX_APP_SERVER_LOGIN_ISSUER: issuer.issuer, EFFECT_AUTH_LOGIN_PORTS: options.ports ?? "0" }
  })
  return { home, server }
}

interface Hop {
  readonly url: string
  readonly status: number
  readonly location: string | null
  readonly body: string
}

/** What a browser does with a URL: follows redirects, one plain request each. */
const browse = async (url: string): Promise<ReadonlyArray<Hop>> => {
  const hops: Array<Hop> = []
  let next: string | null = url
  while (next !== null && hops.length < 5) {
    const response: Response = await fetch(next, { redirect: "manual" })
    const location = response.headers.get("location")
    const hop = { url: next, status: response.status, location, body: await response.text() }
    hops.push(hop)
    next = location === null ? null : new URL(location, next).toString()
  }
  // What a person would see (pages and addresses after the issuer's redirect) goes to the secrets audit.
  record("sign-in pages", hops.slice(1).map((hop) => `${hop.status} ${hop.location ?? ""}\n${hop.body}`).join("\n"))
  return hops
}

/** The issuer's answer to the authorize URL: where it sends the browser back (with the code). */
const authorize = async (authUrl: string) => {
  const response = await fetch(authUrl, { redirect: "manual" })
  expect(response.status).toBe(302)
  return response.headers.get("location")!
}

const completion = (server: RunningProcess, loginId: string) =>
  server.waitFor((m) => m.method === "account/login/completed" && m.params?.loginId === loginId)

const startLogin = async (server: RunningProcess) => {
  const answer = await server.request("account/login/start", { type: "chatgpt" })
  expectValid("v2/LoginAccountResponse", answer.result)
  return answer.result as { readonly type: "chatgpt"; readonly loginId: string; readonly authUrl: string }
}

const refused = (url: string) => fetch(url).then(() => false, () => true)

describe("app server sign-in, Codex profile, against the scripted issuer", () => {
  it("chatgpt: start, the browser's redirects, completion then account/updated, the saved file, status and account", async () => {
    const { home, server } = await start()
    const login = await startLogin(server)
    expect(login.loginId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    const url = new URL(login.authUrl)
    expect(`${url.origin}${url.pathname}`).toBe(`${issuer.issuer}/oauth/authorize`)
    const params = [...url.searchParams]
    expect(params.map(([key]) => key)).toEqual([
      "response_type",
      "client_id",
      "redirect_uri",
      "scope",
      "code_challenge",
      "code_challenge_method",
      "id_token_add_organizations",
      "codex_cli_simplified_flow",
      "state",
      "originator"
    ])
    expect(Object.fromEntries(params)).toMatchObject({
      response_type: "code",
      client_id: "app_EMoamEEZ73f0CkXaXp7hrann",
      scope: "openid profile email offline_access api.connectors.read api.connectors.invoke",
      code_challenge_method: "S256",
      id_token_add_organizations: "true",
      codex_cli_simplified_flow: "true",
      originator: "codex_cli_rs"
    })
    expect(url.searchParams.get("redirect_uri")).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/auth\/callback$/)
    // Spaces as %20, as Codex writes them.
    expect(login.authUrl).toContain("scope=openid%20profile%20email%20offline_access%20api.connectors.read")

    const hops = await browse(login.authUrl)
    expect(hops.map((hop) => hop.status)).toEqual([302, 302, 200])
    expect(hops[1]!.url.startsWith(url.searchParams.get("redirect_uri")!)).toBe(true)
    expect(hops[2]!.url).toBe(url.searchParams.get("redirect_uri")!.replace("/auth/callback", "/success"))
    expect(hops[2]!.body).toContain("You are signed in")

    const completed = await completion(server, login.loginId)
    expectValid("v2/AccountLoginCompletedNotification", completed.params)
    expect(completed.params).toEqual({ loginId: login.loginId, success: true, error: null })
    const updated = await server.waitFor((m) => m.method === "account/updated")
    expect(server.messages.indexOf(updated)).toBeGreaterThan(server.messages.indexOf(completed))
    expect(updated.params).toEqual({ authMode: "chatgpt", planType: "plus" })

    const file = join(home, "auth.json")
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const saved = JSON.parse(readFileSync(file, "utf8"))
    expect(saved.auth_mode).toBe("chatgpt")
    expect(saved.tokens.account_id).toBe("acct_test_1")
    expect(saved.tokens.refresh_token).toMatch(/^rt_SECRET_/)
    expect(Date.now() - Date.parse(saved.last_refresh)).toBeLessThan(60_000)

    const status = await server.request("getAuthStatus", { includeToken: true })
    expect(status.result).toEqual({
      authMethod: "chatgpt",
      authToken: saved.tokens.access_token,
      requiresOpenaiAuth: true
    })
    const account = await server.request("account/read", {})
    expect(account.result).toEqual({
      account: { type: "chatgpt", email: "ada@example.com", planType: "plus" },
      requiresOpenaiAuth: true
    })
    // The code exchange: form-encoded, in Codex's order, with the verifier of the challenge sent.
    const exchange = (await Effect.runPromise(issuer.received)).filter((r) => r.path === "/oauth/token").at(-1)!
    expect(exchange.contentType).toBe("application/x-www-form-urlencoded")
    expect(Object.keys(exchange.fields)).toEqual(["grant_type", "code", "redirect_uri", "client_id", "code_verifier"])
    expect(server.stderr()).not.toContain(exchange.fields.code_verifier!)
    expect(server.stderr()).not.toContain(exchange.fields.code!)
    expect(await server.close()).toBe(0)
  })

  it("cancel: {status: canceled}, completed with success false, the callback server closed, nothing saved; then notFound; an API key sign-in cancels one too", async () => {
    const { home, server } = await start()
    const login = await startLogin(server)
    const redirectUri = new URL(login.authUrl).searchParams.get("redirect_uri")!
    const canceled = await server.request("account/login/cancel", { loginId: login.loginId })
    expectValid("v2/CancelLoginAccountResponse", canceled.result)
    expect(canceled.result).toEqual({ status: "canceled" })
    const completed = await completion(server, login.loginId)
    expect(completed.params).toMatchObject({ loginId: login.loginId, success: false })
    expect(completed.params.error).toContain("canceled")
    expect(await refused(redirectUri)).toBe(true)
    expect((await server.request("account/login/cancel", { loginId: login.loginId })).result).toEqual({
      status: "notFound"
    })
    expect((await server.request("account/login/cancel", { loginId: "no-such-login" })).result).toEqual({
      status: "notFound"
    })
    expect((await server.request("account/login/cancel", {})).error?.code).toBe(-32602)
    expect(() => statSync(join(home, "auth.json"))).toThrow()
    // Signing in with an API key cancels a browser sign-in in progress, as in Codex.
    const again = await startLogin(server)
    expect((await server.request("account/login/start", { type: "apiKey", apiKey: "sk-test-key-SECRET" })).result)
      .toEqual({ type: "apiKey" })
    expect((await completion(server, again.loginId)).params).toMatchObject({ success: false })
    expect(await refused(new URL(again.authUrl).searchParams.get("redirect_uri")!)).toBe(true)
  })

  it("a wrong state is refused and the sign-in keeps waiting; a reused code fails the sign-in that presents it", async () => {
    const { home, server } = await start()
    const first = await startLogin(server)
    const callback = new URL(await authorize(first.authUrl))
    const forged = new URL(callback)
    forged.searchParams.set("state", "not-the-state")
    const wrong = await fetch(forged, { redirect: "manual" })
    expect(wrong.status).toBe(400)
    const page = await wrong.text()
    expect(page).toContain("state mismatch")
    expect(page).not.toContain(callback.searchParams.get("code")!)
    expect(() => statSync(join(home, "auth.json"))).toThrow()
    // The real callback still completes the sign-in.
    expect((await fetch(callback, { redirect: "manual" })).status).toBe(302)
    expect((await completion(server, first.loginId)).params.success).toBe(true)

    // The same code again, through a new sign-in's callback with that sign-in's state.
    const before = readFileSync(join(home, "auth.json"), "utf8")
    const second = await startLogin(server)
    const replay = new URL(new URL(second.authUrl).searchParams.get("redirect_uri")!)
    replay.searchParams.set("code", callback.searchParams.get("code")!)
    replay.searchParams.set("state", new URL(second.authUrl).searchParams.get("state")!)
    const reused = await fetch(replay, { redirect: "manual" })
    expect(reused.status).toBe(502)
    expect(await reused.text()).toContain("invalid_grant")
    const failed = await completion(server, second.loginId)
    expect(failed.params).toMatchObject({ success: false })
    expect(failed.params.error).toContain("invalid_grant")
    expect(readFileSync(join(home, "auth.json"), "utf8")).toBe(before)
  })

  it("a second start cancels the first; an older login server on the first port is asked to /cancel, a port held by something else is skipped", async () => {
    const first = await freePort()
    const fallback = await freePort()
    const ports = `${first},${fallback}`
    const { server } = await start({ ports })
    const one = await startLogin(server)
    expect(new URL(one.authUrl).searchParams.get("redirect_uri")).toBe(`http://127.0.0.1:${first}/auth/callback`)
    const two = await startLogin(server)
    expect((await completion(server, one.loginId)).params).toMatchObject({ success: false })
    // The first port was given back and taken again by the second sign-in.
    expect(new URL(two.authUrl).searchParams.get("redirect_uri")).toBe(`http://127.0.0.1:${first}/auth/callback`)

    // Another process's sign-in takes the port over through /cancel, as Codex's does.
    const { server: other } = await start({ ports })
    const three = await startLogin(other)
    expect(new URL(three.authUrl).searchParams.get("redirect_uri")).toBe(`http://127.0.0.1:${first}/auth/callback`)
    expect((await completion(server, two.loginId)).params).toMatchObject({ success: false })

    // A port held by something that is not a login server: the fallback port.
    const holder = await holdPort()
    try {
      const { server: third } = await start({ ports: `${portOf(holder)},${fallback}` })
      const four = await startLogin(third)
      expect(new URL(four.authUrl).searchParams.get("redirect_uri")).toBe(`http://127.0.0.1:${fallback}/auth/callback`)
    } finally {
      await new Promise((resolve) => holder.close(resolve))
    }
  })

  it("chatgptDeviceCode: the code and URL, approval at the issuer, completion and the saved file", async () => {
    const { home, server } = await start()
    const answer = await server.request("account/login/start", { type: "chatgptDeviceCode" })
    expectValid("v2/LoginAccountResponse", answer.result)
    const login = answer.result as { loginId: string; verificationUrl: string; userCode: string }
    expect(login).toMatchObject({ type: "chatgptDeviceCode", verificationUrl: `${issuer.issuer}/codex/device` })
    const approved = await fetch(login.verificationUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ user_code: login.userCode })
    })
    expect(approved.status).toBe(200)
    const completed: Message = await completion(server, login.loginId)
    expect(completed.params).toEqual({ loginId: login.loginId, success: true, error: null })
    const saved = JSON.parse(readFileSync(join(home, "auth.json"), "utf8"))
    expect(saved.tokens.account_id).toBe("acct_test_1")
    const received = await Effect.runPromise(issuer.received)
    const exchange = received.filter((r) => r.path === "/oauth/token").at(-1)!
    expect(exchange.fields.redirect_uri).toBe(`${issuer.issuer}/deviceauth/callback`)
    expect(received.find((r) => r.path === "/api/accounts/deviceauth/usercode")!.body).toBe(
      JSON.stringify({ client_id: "app_EMoamEEZ73f0CkXaXp7hrann" })
    )
  })
})

describe("effect-auth login, Codex profile, against the scripted issuer", () => {
  /** Resolves with the first match of `pattern` in the process's standard error. */
  const fromStderr = (cli: RunningProcess, pattern: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const match = cli.stderr().match(pattern)
        if (match !== null) {
          cli.child.stderr.off("data", check)
          resolve(match)
        }
      }
      cli.child.stderr.on("data", check)
      cli.child.on("close", () => reject(new Error(`exited; stderr: ${cli.stderr()}`)))
      check()
    })

  const login = (home: string, args: ReadonlyArray<string> = []) =>
    spawnScript("effect-auth", ["login", ...args], {
      HOME: home,
      CODEX_HOME: home,
      CODEX_APP_SERVER_LOGIN_ISSUER: issuer.issuer,
      CODEX_REFRESH_TOKEN_URL_OVERRIDE: issuer.tokenUrl,
      EFFECT_AUTH_LOGIN_PORTS: "0"
    })

  it("login: prints the link, the browser comes back, it says who signed in and exits 0; Ctrl-C cancels with exit 130", async () => {
    const home = tempHome()
    const cli = login(home)
    const [link] = await fromStderr(cli, /http:\/\/127\.0\.0\.1:\d+\/oauth\/authorize\?\S+/)
    const hops = await browse(link)
    expect(hops.map((hop) => hop.status)).toEqual([302, 302, 200])
    expect(await cli.exited).toBe(0)
    expect(cli.stdout()).toBe("Signed in with ChatGPT as ada@example.com (plan: plus)\n")
    expect(JSON.parse(readFileSync(join(home, "auth.json"), "utf8")).tokens.account_id).toBe("acct_test_1")

    const other = tempHome()
    const canceled = login(other)
    const [second] = await fromStderr(canceled, /http:\/\/127\.0\.0\.1:\d+\/oauth\/authorize\?\S+/)
    const redirectUri = new URL(second).searchParams.get("redirect_uri")!
    canceled.child.kill("SIGINT")
    expect(await canceled.exited).toBe(130)
    expect(canceled.stderr()).toContain("Sign-in canceled; nothing was saved.")
    expect(await refused(redirectUri)).toBe(true)
    expect(() => statSync(join(other, "auth.json"))).toThrow()
  })

  it("login --device: prints the URL and the code, waits for approval, exits 0", async () => {
    const home = tempHome()
    const cli = login(home, ["--device"])
    const [, code] = await fromStderr(cli, /enter this code:\s+(\S+)/)
    expect(cli.stderr()).toContain(`${issuer.issuer}/codex/device`)
    expect(await Effect.runPromise(issuer.approveDevice(code!))).toBe(true)
    expect(await cli.exited).toBe(0)
    expect(cli.stdout()).toContain("Signed in with ChatGPT as ada@example.com")
  })
})
