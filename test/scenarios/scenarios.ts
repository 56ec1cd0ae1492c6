/**
 * The behavioural contract of the library, written once with no Effect in it and run against each
 * edition through its adapter (edition.ts): storms, poison and its clearing, backoff, recovery from a
 * 401, and the secrets audit. The servers are plain node:http (servers.ts) and time is the edition's
 * test clock, so nothing here waits on real time.
 */
import { type Cluster, startCluster } from "../support/postgres.js"
import type { Scenarios, StoreKind, World, WorldOptions } from "./edition.js"
import { chatgptAuth, idToken, secrets } from "./fixtures.js"
import * as Servers from "./servers.js"

/** The groups of scenarios, by the name an edition's `pending` uses. */
export const groups = [
  "refresh storm",
  "poison",
  "poison clearing",
  "one CODEX_HOME, two managers",
  "one database, two replicas",
  "transient backoff",
  "401 recovery",
  "browser sign-in",
  "secrets audit"
] as const
export type Group = (typeof groups)[number]

const concurrentPolls = 200
const stores: ReadonlyArray<StoreKind> = ["memory", "file"]

export const scenarios: Scenarios = (edition, { afterAll, describe, expect, it }) => {
  const group = (name: Group, body: (test: (title: string, run: () => Promise<void>) => void) => void) =>
    describe(`${name} (${edition.name})`, () => {
      const pending = edition.pending?.[name]
      body((title, run) => pending === undefined ? it(title, run) : it.todo(`${title}: ${pending}`))
    })

  const withWorld = async (options: WorldOptions, run: (world: World) => Promise<void>) => {
    const world = await edition.makeWorld(options)
    try {
      await run(world)
    } finally {
      await world.close()
    }
  }
  const withServer = async <S extends { close: () => Promise<void> }>(
    server: Promise<S>,
    run: (server: S) => Promise<void>
  ) => {
    const started = await server
    try {
      await run(started)
    } finally {
      await started.close()
    }
  }
  const pollMany = (world: World) =>
    Promise.all(
      Array.from({ length: concurrentPolls }, () => world.getAuthStatus({ includeToken: true, refreshToken: true }))
    )

  group("refresh storm", (test) => {
    for (const store of stores) {
      test(`${concurrentPolls} concurrent polls of an expired token (${store} store): 1 token request, every answer the new token, the rotated refresh token stored`, () =>
        withServer(Servers.tokenEndpoint(Servers.rotating(secrets.refresh)), (endpoint) =>
          withWorld({
            store,
            auth: chatgptAuth({ expiresIn: -60_000 }),
            refresher: { _tag: "Http", tokenUrl: endpoint.url }
          }, async (world) => {
            const answers = await pollMany(world)
            expect(endpoint.received).toEqual([secrets.refresh])
            const tokens = new Set(answers.map((answer) => answer.authToken))
            expect(tokens.size).toBe(1)
            expect([...tokens][0]).not.toBe(secrets.access)
            expect(answers.every((answer) => answer.authMethod === "chatgpt")).toBe(true)
            expect((await world.stored())?.tokens.refresh_token).toBe("rt-1")
            // Fresh now: as many polls again make no request.
            await pollMany(world)
            expect(endpoint.received).toHaveLength(1)
          })))
    }
  })

  group("poison", (test) => {
    for (const store of stores) {
      test(`a dead refresh token (${store} store): ${concurrentPolls} concurrent polls make 1 request, the method stays visible, the token is withheld; an hour and as many polls later, still 1`, () =>
        withServer(
          Servers.tokenEndpoint(() => Servers.reused),
          (endpoint) =>
            withWorld(
              { store, auth: chatgptAuth(), refresher: { _tag: "Http", tokenUrl: endpoint.url } },
              async (world) => {
                const first = await pollMany(world)
                expect(endpoint.received).toEqual([secrets.refresh])
                expect(first.every((s) => s.authMethod === "chatgpt" && s.authToken === null)).toBe(true)
                await world.clock.adjust(3_600_000)
                const second = await pollMany(world)
                expect(second.every((s) => s.authMethod === "chatgpt" && s.authToken === null)).toBe(true)
                expect(endpoint.received).toHaveLength(1)
                expect(await world.state()).toMatchObject({ method: "chatgpt", status: "poisoned", reason: "reused" })
                // An explicit refresh fails at once with the recorded error, with no request.
                const failure = await world.refresh()
                expect(failure?.tag).toBe("PermanentRefreshError")
                expect(failure?.message).toContain("sign in again")
                expect(endpoint.received).toHaveLength(1)
              }
            )
        ))
    }
  })

  group("poison clearing", (test) => {
    const poisoned = async (world: World) => {
      await world.getAuthStatus({ refreshToken: true })
      expect((await world.state()).status).toBe("poisoned")
    }
    const options: WorldOptions = {
      store: "memory",
      auth: chatgptAuth(),
      refresher: {
        _tag: "Scripted",
        steps: [{ _tag: "Dead", reason: "reused" }, { _tag: "Rotated", access: "unused" }]
      }
    }

    test("a sign-in with new tokens clears it: the new token is served, with no request", () =>
      withWorld(options, async (world) => {
        await poisoned(world)
        await world.loginWithTokens({ idToken, access: secrets.loginAccess, refresh: secrets.loginRefresh })
        expect((await world.state()).status).toBe("healthy")
        expect((await world.getAuthStatus({ includeToken: true, refreshToken: true })).authToken).toBe(
          secrets.loginAccess
        )
        expect(await world.refreshCalls()).toEqual([secrets.refresh])
      }))

    test("a sign-in with an API key clears it", () =>
      withWorld(options, async (world) => {
        await poisoned(world)
        await world.loginWithApiKey(secrets.apiKey)
        expect(await world.getAuthStatus({ includeToken: true })).toMatchObject({
          authMethod: "apikey",
          authToken: secrets.apiKey
        })
      }))

    test("signing out clears it", () =>
      withWorld(options, async (world) => {
        await poisoned(world)
        await world.logout()
        expect(await world.state()).toMatchObject({ method: null, status: "healthy" })
        expect(await world.stored()).toBe(undefined)
      }))

    test("another process's new credentials, read by a reload, clear it", () =>
      withWorld(options, async (world) => {
        await poisoned(world)
        await world.writeBehind(
          chatgptAuth({ access: secrets.newAccess, refresh: secrets.newRefresh, refreshedAgo: 0 })
        )
        expect(await world.reload()).toBeNull()
        expect((await world.state()).status).toBe("healthy")
        expect((await world.getAuthStatus({ includeToken: true })).authToken).toBe(secrets.newAccess)
      }))

    test("a reload of the same credentials does not: the token stays withheld, no second request", () =>
      withWorld(options, async (world) => {
        await poisoned(world)
        await world.writeBehind(chatgptAuth())
        await world.reload()
        expect((await world.state()).status).toBe("poisoned")
        expect((await world.getAuthStatus({ includeToken: true, refreshToken: true })).authToken).toBeNull()
        expect(await world.refreshCalls()).toEqual([secrets.refresh])
      }))
  })

  // Two managers over one store, each with its own connection to it: two processes on one machine
  // (one CODEX_HOME), or two replicas of a server (one database).
  const sharing = (
    name: "one CODEX_HOME, two managers" | "one database, two replicas",
    shared: () => Promise<Pick<WorldOptions, "store" | "database">>
  ) =>
    group(name, (test) => {
      const pair = (
        first: Omit<WorldOptions, "store">,
        run: (first: World, second: () => Promise<World>) => Promise<void>
      ) =>
        shared().then((where) =>
          withWorld({ ...where, ...first }, async (world) => {
            const opened: Array<World> = []
            const second = async () => {
              const other = await edition.makeWorld({
                ...where,
                ...(where.store === "file" ? { codexHome: world.codexHome! } : {}),
                refresher: first.refresher
              })
              opened.push(other)
              return other
            }
            try {
              await run(world, second)
            } finally {
              await Promise.all(opened.map((other) => other.close()))
            }
          })
        )

      test("a dead refresh token found by one is known to the other from its start: no request of its own, the token withheld", () =>
        withServer(Servers.tokenEndpoint(() => Servers.reused), (endpoint) =>
          pair({ auth: chatgptAuth(), refresher: { _tag: "Http", tokenUrl: endpoint.url } }, async (first, second) => {
            await first.getAuthStatus({ refreshToken: true })
            expect(endpoint.received).toEqual([secrets.refresh])
            const other = await second()
            expect(await other.state()).toMatchObject({ status: "poisoned", reason: "reused" })
            expect(await other.getAuthStatus({ includeToken: true, refreshToken: true })).toMatchObject({
              authMethod: "chatgpt",
              authToken: null
            })
            expect(endpoint.received).toHaveLength(1)
          })))

      test("a refresh by one is adopted by the other, which finds the new tokens stored: one request in all", () =>
        withServer(Servers.tokenEndpoint(Servers.rotating(secrets.refresh)), (endpoint) =>
          pair(
            { auth: chatgptAuth({ expiresIn: -60_000 }), refresher: { _tag: "Http", tokenUrl: endpoint.url } },
            async (first, second) => {
              const other = await second()
              const refreshed = await first.getAuthStatus({ includeToken: true, refreshToken: true })
              const adopted = await other.getAuthStatus({ includeToken: true, refreshToken: true })
              expect(endpoint.received).toEqual([secrets.refresh])
              expect(adopted.authToken).toBe(refreshed.authToken)
              expect(adopted.authToken).not.toBe(secrets.access)
              expect((await other.stored())?.tokens.refresh_token).toBe("rt-1")
            }
          )))
    })

  sharing("one CODEX_HOME, two managers", async () => ({ store: "file" }))

  // One throwaway PostgreSQL cluster for the group, started as the scenarios are collected so that it
  // comes up while the groups before it run; each test its own tables (a prefix of its own).
  const cluster: Promise<Cluster> | undefined = edition.pending?.["one database, two replicas"] === undefined
    ? startCluster()
    : undefined
  // Its failure is the group's tests' to report, not an unhandled rejection before them.
  cluster?.catch(() => undefined)
  let tables = 0
  afterAll(async () => {
    await cluster?.then((started) => started.stop(), () => undefined)
  })
  sharing("one database, two replicas", async () => ({
    store: "postgres",
    database: { url: (await cluster!).url, prefix: `scenario_${++tables}` }
  }))

  group("transient backoff", (test) => {
    const down = (retryAfterSeconds?: number): WorldOptions => ({
      store: "memory",
      auth: chatgptAuth(),
      refresher: {
        _tag: "Scripted",
        steps: [retryAfterSeconds === undefined ? { _tag: "Down" } : { _tag: "Down", retryAfterSeconds }]
      }
    })

    test("each failure cools down: about 1 s for the first ten, then growing; no request before a cooldown ends, and the cached token is served meanwhile", () =>
      withWorld(down(), async (world) => {
        const delays: Array<number> = []
        for (let attempt = 1; attempt <= 20; attempt++) {
          await world.getAuthStatus({ refreshToken: true })
          expect(await world.refreshCalls()).toHaveLength(attempt)
          const { retryAt, status } = await world.state()
          expect(status).toBe("cooling-down")
          const delay = retryAt! - (await world.clock.now())
          delays.push(delay)
          await world.clock.adjust(delay - 1)
          const during = await world.getAuthStatus({ includeToken: true, refreshToken: true })
          expect(during.authToken).toBe(secrets.access)
          expect(await world.refreshCalls()).toHaveLength(attempt)
          await world.clock.adjust(1)
        }
        for (const delay of delays.slice(0, 10)) {
          expect(delay).toBeGreaterThanOrEqual(1000)
          expect(delay).toBeLessThan(1100)
        }
        // 1.2^10 ≈ 6.2: the twentieth delay is at least six times the first.
        expect(delays[19]!).toBeGreaterThan(6000)
      }))

    test("Retry-After is a floor: no request before it", () =>
      withWorld(down(120), async (world) => {
        await world.getAuthStatus({ refreshToken: true })
        expect((await world.state()).retryAt).toBeGreaterThanOrEqual(120_000)
        await world.clock.adjust(119_000)
        await world.getAuthStatus({ refreshToken: true })
        expect(await world.refreshCalls()).toHaveLength(1)
      }))

    test("a real endpoint down, then back (file store): the expired token served meanwhile, then one request after the cooldown gets the new one", () =>
      withServer(Servers.tokenEndpoint(() => Servers.unavailable), (endpoint) => {
        const expired = chatgptAuth({ expiresIn: -60_000 })
        return withWorld(
          { store: "file", auth: expired, refresher: { _tag: "Http", tokenUrl: endpoint.url } },
          async (world) => {
            // The expired token is still the best there is: served, not withheld.
            expect(await world.getAuthStatus({ includeToken: true, refreshToken: true })).toEqual({
              authMethod: "chatgpt",
              authToken: (expired.tokens as { access_token: string }).access_token,
              requiresOpenaiAuth: true
            })
            const { retryAt, status } = await world.state()
            expect(status).toBe("cooling-down")
            endpoint.answerWith(Servers.rotating(secrets.refresh))
            await world.clock.setTime(retryAt! - 1)
            await world.getAuthStatus({ refreshToken: true })
            expect(endpoint.received).toHaveLength(1)
            await world.clock.setTime(retryAt!)
            const after = await world.getAuthStatus({ includeToken: true, refreshToken: true })
            expect(endpoint.received).toEqual([secrets.refresh, secrets.refresh])
            expect(after.authToken).not.toBe((expired.tokens as { access_token: string }).access_token)
            expect(await world.state()).toMatchObject({ status: "healthy", retryAt: null })
            expect((await world.stored())?.tokens.refresh_token).toBe("rt-1")
          }
        )
      }))
  })

  group("401 recovery", (test) => {
    // Refreshed a second ago: a plain refresh would wait for the minimum interval; a 401 does not.
    const justRefreshed = (steps: number): WorldOptions => ({
      store: "memory",
      auth: chatgptAuth({ refreshedAgo: 1_000 }),
      refresher: {
        _tag: "Scripted",
        steps: [
          { _tag: "Rotated", access: secrets.newAccess, refresh: secrets.newRefresh },
          { _tag: "Rotated", access: `access-${steps}`, refresh: `refresh-${steps}` }
        ]
      }
    })

    test("a refused token is refreshed once and the request retried with the new one, which is kept", () =>
      withServer(
        Servers.api((token) => token === secrets.access),
        (api) =>
          withWorld(justRefreshed(2), async (world) => {
            expect(await world.request(api.url)).toEqual({ status: 200 })
            expect(api.received).toEqual([secrets.access, secrets.newAccess])
            expect(await world.refreshCalls()).toEqual([secrets.refresh])
            expect(await world.request(api.url)).toEqual({ status: 200 })
            expect(api.received.at(-1)).toBe(secrets.newAccess)
            expect(await world.refreshCalls()).toHaveLength(1)
          })
      ))

    test("an API that refuses every token: the second 401 goes back to the caller, and the new token is not refreshed again", () =>
      withServer(Servers.api(() => true), (api) =>
        withWorld(justRefreshed(3), async (world) => {
          expect(await world.request(api.url)).toEqual({ status: 401 })
          expect(api.received).toEqual([secrets.access, secrets.newAccess])
          expect(await world.request(api.url)).toEqual({ status: 401 })
          expect(api.received).toHaveLength(3)
          expect(await world.refreshCalls()).toHaveLength(1)
        })))

    test("a dead refresh token: the typed poisoned error, then no request to the API or the token endpoint", () =>
      withServer(Servers.api((token) => token === secrets.access), (api) =>
        withWorld({
          store: "memory",
          auth: chatgptAuth({ refreshedAgo: 1_000 }),
          refresher: { _tag: "Scripted", steps: [{ _tag: "Dead", reason: "revoked" }] }
        }, async (world) => {
          const first = await world.request(api.url)
          expect(first).toMatchObject({ failure: { tag: "CredentialsUnavailableError" } })
          expect(api.received).toEqual([secrets.access])
          const second = await world.request(api.url)
          expect(second).toMatchObject({ failure: { tag: "CredentialsUnavailableError" } })
          expect(api.received).toHaveLength(1)
          expect(await world.refreshCalls()).toHaveLength(1)
        })))
  })

  group("browser sign-in", (test) => {
    test("a browser sign-in against a Codex issuer saves the new tokens, clears the poison, and serves the new token with no refresh", () =>
      withServer(Servers.codexIssuer(), (issuer) =>
        withWorld({
          store: "file",
          auth: chatgptAuth(),
          refresher: { _tag: "Scripted", steps: [{ _tag: "Dead", reason: "reused" }] },
          issuer: issuer.url
        }, async (world) => {
          await world.getAuthStatus({ refreshToken: true })
          expect((await world.state()).status).toBe("poisoned")
          let hops: Array<number> = []
          const outcome = await world.signInWithBrowser(async (authUrl) => {
            expect(authUrl.startsWith(`${issuer.url}/oauth/authorize?`)).toBe(true)
            hops = await Servers.browse(authUrl)
          })
          // The issuer's redirect, the loopback's redirect to its success page, the page.
          expect(hops).toEqual([302, 302, 200])
          expect(outcome).toMatchObject({ state: { method: "chatgpt", status: "healthy" } })
          expect(issuer.grants).toEqual(["authorization_code"])
          expect((await world.stored())?.tokens.refresh_token).toBe(Servers.signedIn.refresh)
          expect((await world.getAuthStatus({ includeToken: true, refreshToken: true })).authToken).toBe(
            Servers.signedIn.access
          )
          expect(await world.refreshCalls()).toEqual([secrets.refresh])
        })))

    test("an authorization code the issuer refuses: a typed failure, nothing saved", () =>
      withServer(Servers.codexIssuer(), (issuer) =>
        withWorld({
          store: "memory",
          refresher: { _tag: "Scripted", steps: [{ _tag: "Dead", reason: "reused" }] },
          issuer: issuer.url
        }, async (world) => {
          const outcome = await world.signInWithBrowser(async (authUrl) => {
            // A code of the browser's own making, with the sign-in's own state.
            const authorize = await fetch(authUrl, { redirect: "manual" })
            const callback = new URL(authorize.headers.get("location")!)
            callback.searchParams.set("code", "ac-forged")
            await fetch(callback, { redirect: "manual" }).then((response) => response.text())
          })
          expect(outcome).toMatchObject({ failure: { tag: "SignInError" } })
          expect(await world.state()).toMatchObject({ method: null })
          expect(await world.stored()).toBe(undefined)
        })))
  })

  group("secrets audit", (test) => {
    test("no token reaches a log line, a span, an error or the state, through poison, outage, recovery, rotation, sign-in, a 401 and sign-out", () =>
      withServer(
        Servers.tokenEndpoint(() => Servers.reused),
        (endpoint) =>
          withServer(Servers.api(() => true), (api) =>
            withWorld(
              { store: "file", auth: chatgptAuth(), refresher: { _tag: "Http", tokenUrl: endpoint.url } },
              async (world) => {
                const printed: Array<string> = []
                const record = (failure: { message: string; printed: string } | null) =>
                  failure !== null && printed.push(failure.message, failure.printed)
                await world.getAuthStatus({ refreshToken: true })
                record(await world.refresh())
                await world.loginWithTokens({ idToken, access: secrets.newAccess, refresh: secrets.newRefresh })
                endpoint.answerWith(() => Servers.unavailable)
                await world.clock.adjust(60_000)
                await world.getAuthStatus({ refreshToken: true })
                record(await world.refresh())
                endpoint.answerWith(Servers.rotating(secrets.newRefresh))
                await world.clock.adjust(600_000)
                await world.getAuthStatus({ refreshToken: true })
                const answered = await world.request(api.url)
                if ("failure" in answered) record(answered.failure)
                await world.loginWithApiKey(secrets.apiKey)
                await world.loginWithTokens({ idToken, access: secrets.loginAccess, refresh: secrets.loginRefresh })
                printed.push(JSON.stringify(await world.state()))
                await world.logout()

                // Poison, outage, rotation, and the one refresh the API's 401 asked for.
                expect(endpoint.received).toEqual([secrets.refresh, secrets.newRefresh, secrets.newRefresh, "rt-1"])
                const text = `${await world.logs()}\n${printed.join("\n")}`
                // The audit reads real output: the poison and the outage were logged and printed.
                expect(text).toContain("already used")
                expect(text).toContain("503")
                for (const secret of [...Object.values(secrets), "rt-1", "rt-2"]) expect(text).not.toContain(secret)
              }
            ))
      ))
  })
}
