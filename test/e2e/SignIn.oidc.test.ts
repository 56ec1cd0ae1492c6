/**
 * Sign-in with a generic OpenID Connect provider: oidc-provider on 127.0.0.1
 * (PKCE required, device flow, refresh-token rotation, client_secret_basic)
 * and a real headless Chromium filling its login and consent pages, while
 * the real `effect-auth` process waits. One provider and one browser for the
 * whole file.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import puppeteer, { type Browser, type Page } from "puppeteer-core"
import * as OidcDev from "../../scripts/oidc-dev.js"
import { record, recordSecret } from "../support/audit.js"
import { cleanup, type RunningProcess, spawnScript, tempHome } from "../support/processes.js"

let provider: OidcDev.DevProvider
let browser: Browser
let profile: string

const chromium = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

beforeAll(async () => {
  if (!existsSync(chromium)) {
    throw new Error(
      `No browser at ${chromium}: these tests sign in with a real headless Chromium. ` +
        "Install Debian's chromium package (.ci/run does), or set CHROMIUM_PATH."
    )
  }
  profile = mkdtempSync(join(tmpdir(), "effect-auth-chromium-"))
  ;[provider, browser] = await Promise.all([
    OidcDev.start(),
    puppeteer.launch({
      executablePath: chromium,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`
      ]
    })
  ])
})
afterAll(async () => {
  await browser?.close()
  await provider?.close()
  rmSync(profile, { recursive: true, force: true })
})
afterEach(cleanup)

const env = (home: string, extra: Record<string, string> = {}) => ({
  HOME: home,
  CODEX_HOME: home,
  EFFECT_AUTH_ISSUER: provider.issuer,
  EFFECT_AUTH_CLIENT_ID: OidcDev.clientId,
  EFFECT_AUTH_CLIENT_SECRET: OidcDev.clientSecret,
  ...extra
})

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

/** A new tab that reaches 127.0.0.1 only (the provider's pages import a web font), and the URLs it visited. */
const openTab = async () => {
  const page = await browser.newPage()
  const visited: Array<string> = []
  await page.setRequestInterception(true)
  page.on("request", (request) => {
    const url = new URL(request.url())
    if (url.hostname !== "127.0.0.1") return void request.abort()
    if (request.isNavigationRequest()) visited.push(request.url())
    void request.continue()
  })
  return { page, visited }
}

/** Plays the person: fills what oidc-provider's pages ask for and continues, until `done`. */
const clickThrough = async (page: Page, done: () => Promise<boolean>, userCode?: string) => {
  for (let step = 0; step < 8; step++) {
    if (await done()) return
    if (userCode !== undefined && (await page.$("input[name=user_code]")) !== null) {
      await page.type("input[name=user_code]", userCode)
    }
    if ((await page.$("input[name=login]")) !== null) {
      await page.type("input[name=login]", "ada")
      await page.type("input[name=password]", "any password")
    }
    await Promise.all([
      page.waitForNavigation({ waitUntil: "load" }),
      page.click("button[type=submit]:not([name=abort])")
    ])
  }
  throw new Error(`the pages never ended; last at ${page.url()}: ${await page.content()}`)
}

const bodyText = (page: Page) => page.evaluate("document.body.innerText") as Promise<string>

describe("effect-auth login with any OpenID Connect provider (oidc-provider, Chromium)", () => {
  it("in a browser: login and consent pages, our success page; then refresh works with the same settings", async () => {
    const home = tempHome()
    const tokenRequestsBefore = provider.tokenRequests()
    const cli = spawnScript("effect-auth", ["login"], env(home))
    const [link] = await fromStderr(cli, /http:\/\/127\.0\.0\.1:\d+\/auth\?\S+/)
    const authorize = new URL(link)
    expect(authorize.searchParams.get("code_challenge_method")).toBe("S256")
    expect(authorize.searchParams.get("prompt")).toBe("consent")
    const redirectUri = new URL(authorize.searchParams.get("redirect_uri")!)
    expect(redirectUri.hostname).toBe("127.0.0.1")
    expect(Number(redirectUri.port)).toBeGreaterThan(0)

    const { page, visited } = await openTab()
    try {
      await page.goto(link, { waitUntil: "load" })
      await clickThrough(page, async () => page.url().startsWith(`${redirectUri.origin}/success`))
      expect(await bodyText(page)).toContain("You are signed in")
      expect(await cli.exited).toBe(0)
      expect(cli.stdout()).toContain("ada@example.com")

      const saved = JSON.parse(readFileSync(join(home, "auth.json"), "utf8"))
      expect(statSync(join(home, "auth.json")).mode & 0o777).toBe(0o600)
      expect(saved.auth_mode).toBe("chatgpt")
      expect(saved.expires_at).toBeDefined()
      const { access_token, refresh_token, id_token } = saved.tokens
      const callback = visited.find((url) => url.startsWith(redirectUri.toString()))!
      const code = new URL(callback).searchParams.get("code")!
      recordSecret(access_token, refresh_token, id_token, code)
      // Only the callback (which the provider built) holds the code; no later address or page does.
      for (const url of visited.slice(visited.indexOf(callback) + 1)) expect(url).not.toContain(code)
      const html = await page.content()
      for (const secret of [code, access_token, refresh_token, id_token]) expect(html).not.toContain(secret)
      record("oidc sign-in pages", `${page.url()}\n${html}`)

      // The same configuration refreshes: the discovered token endpoint, client_secret_basic, rotation.
      const refresh = spawnScript(
        "effect-auth",
        ["refresh"],
        env(home, {
          EFFECT_AUTH_REFRESH_WINDOW: "15 minutes",
          EFFECT_AUTH_MIN_REFRESH_INTERVAL: "0 seconds"
        })
      )
      expect(await refresh.exited).toBe(0)
      const after = JSON.parse(readFileSync(join(home, "auth.json"), "utf8"))
      recordSecret(after.tokens.access_token, after.tokens.refresh_token)
      expect(after.tokens.refresh_token).not.toBe(refresh_token)
      expect(after.tokens.access_token).not.toBe(access_token)
      expect(provider.tokenRequests() - tokenRequestsBefore).toBe(2)
    } finally {
      await page.close()
    }
  })

  it("with a device code: the browser enters the code on the provider's page while the CLI polls", async () => {
    const home = tempHome()
    const cli = spawnScript("effect-auth", ["login", "--device"], env(home))
    const [, verificationUrl, userCode] = await fromStderr(
      cli,
      /in a browser on any device:\s+(\S+)\s+and enter this code:\s+(\S+)/
    )
    expect(verificationUrl).toBe(`${provider.issuer}/device`)
    const { page } = await openTab()
    try {
      await page.goto(verificationUrl!, { waitUntil: "load" })
      await clickThrough(page, async () => (await bodyText(page)).includes("Sign-in Success"), userCode)
      expect(await cli.exited).toBe(0)
      expect(cli.stdout()).toContain("ada@example.com")
      const saved = JSON.parse(readFileSync(join(home, "auth.json"), "utf8"))
      recordSecret(saved.tokens.access_token, saved.tokens.refresh_token, saved.tokens.id_token)
      expect(saved.tokens.refresh_token.length).toBeGreaterThan(20)
    } finally {
      await page.close()
    }
  })
})
