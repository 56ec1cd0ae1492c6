/**
 * What a server built on the library does with the credentials: calls an API through the authorized
 * client (one recovery from a 401), signs a user in through a browser, and never lets a token out.
 */
import type { Context } from "./context.js"
import type { WorldOptions } from "./edition.js"
import { chatgptAuth, idToken, secrets } from "./fixtures.js"
import * as Servers from "./servers.js"

export const clients = ({ expect, group, withServer, withWorld }: Context): void => {
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
    test("no token reaches a log line, a span, an error or the state, through poison, outage, recovery, rotation, sign-ins, a 401 and sign-out", () =>
      withServer(
        Servers.tokenEndpoint(() => Servers.reused),
        (endpoint) =>
          withServer(Servers.api(() => true), (api) =>
            withServer(Servers.codexIssuer(), (issuer) =>
              withWorld({
                store: "file",
                auth: chatgptAuth(),
                refresher: { _tag: "Http", tokenUrl: endpoint.url },
                issuer: issuer.url
              }, async (world) => {
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
                const signedIn = await world.signInWithBrowser(Servers.browse)
                expect(signedIn).toMatchObject({ state: { method: "chatgpt", status: "healthy" } })
                printed.push(JSON.stringify(signedIn), JSON.stringify(await world.state()))
                await world.logout()

                // Poison, outage, rotation, and the one refresh the API's 401 asked for.
                expect(endpoint.received).toEqual([secrets.refresh, secrets.newRefresh, secrets.newRefresh, "rt-1"])
                expect(issuer.grants).toEqual(["authorization_code"])
                const text = `${await world.logs()}\n${printed.join("\n")}`
                // The audit reads real output: the poison and the outage were logged and printed.
                expect(text).toContain("already used")
                expect(text).toContain("503")
                const all = [
                  ...Object.values(secrets),
                  "rt-1",
                  "rt-2",
                  Servers.signedIn.access,
                  Servers.signedIn.refresh
                ]
                for (const secret of all) expect(text).not.toContain(secret)
                // Nor the authorization code the browser carried to the loopback.
                expect(text).not.toMatch(/ac-\d/)
              })))
      ))
  })
}
