/**
 * Polling one credential: a storm of polls on an expired token, a dead refresh token (the poison) and
 * what clears it, and the backoff after transient failures.
 */
import { concurrentPolls, type Context } from "./context.js"
import type { StoreKind, World, WorldOptions } from "./edition.js"
import { chatgptAuth, idToken, secrets } from "./fixtures.js"
import * as Servers from "./servers.js"

const stores: ReadonlyArray<StoreKind> = ["memory", "file"]

export const polling = ({ expect, group, pollMany, withServer, withWorld }: Context): void => {
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
}
