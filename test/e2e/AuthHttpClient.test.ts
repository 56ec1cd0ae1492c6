import { FileSystem, HttpClientResponse } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { afterEach, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Schema } from "effect"
import { AuthHttpClient } from "../../src/client/AuthHttpClient.js"
import { layerNode } from "../../src/node/layerNode.js"
import * as TokenEndpoint from "../../src/testing/TokenEndpoint.js"
import * as Api from "../support/api.js"
import { chatgptJson, idToken, secrets } from "../support/fixtures.js"
import * as Oidc from "../support/oidc.js"
import { cleanup, spawnScript, tempHome } from "../support/processes.js"

afterEach(cleanup)

const tenDaysAgo = () => new Date(Date.now() - 10 * 86_400_000).toISOString()

/** The Node stack and the authorized client, configured only through `Config`, as a server would be. */
const stackFor = (home: string, oidc: Oidc.OidcServer) =>
  AuthHttpClient.layer.pipe(
    Layer.provideMerge(layerNode),
    Layer.provide(NodeHttpClient.layerUndici),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
      new Map([
        ["CODEX_HOME", home],
        ["CODEX_REFRESH_TOKEN_URL_OVERRIDE", oidc.tokenUrl],
        ["EFFECT_AUTH_CLIENT_ID", Oidc.clientId],
        ["EFFECT_AUTH_CLIENT_SECRET", Oidc.clientSecret],
        ["EFFECT_AUTH_REFRESH_BODY", "form"]
      ])
    )))
  )

const UserInfo = Schema.Struct({ sub: Schema.String, email: Schema.String })

/** A signed-in auth.json for a fresh grant of the OIDC server; its opaque access token is stale, so the first call refreshes. */
const signedIn = (oidc: Oidc.OidcServer) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const home = yield* fs.makeTempDirectoryScoped()
    const { refreshToken } = yield* Effect.promise(() => oidc.grant())
    yield* fs.writeFileString(
      `${home}/auth.json`,
      JSON.stringify({
        auth_mode: "chatgpt",
        OPENAI_API_KEY: null,
        tokens: {
          id_token: idToken,
          access_token: "opaque-of-a-previous-sign-in",
          refresh_token: refreshToken,
          account_id: "acct_123"
        },
        last_refresh: tenDaysAgo()
      })
    )
    const saved = Effect.map(fs.readFileString(`${home}/auth.json`), (text) => JSON.parse(text).tokens)
    return { home, saved }
  })

const userinfo = (url: string) => Effect.flatMap(AuthHttpClient, (client) => client.get(url))

describe("the authorized client against oidc-provider's userinfo endpoint on 127.0.0.1", () => {
  // oidc-provider's revocation endpoint revokes every token of the grant, refresh tokens included
  // (that is the next test): an access token alone is revoked through its model, as an admin would.
  it.scopedLive("an access token revoked on the server: the next call gets 401, recovers with one refresh, and succeeds", () =>
    Effect.gen(function*() {
      const oidc = yield* Oidc.start
      const { home, saved } = yield* signedIn(oidc)
      yield* Effect.gen(function*() {
        const first = yield* userinfo(oidc.userinfoUrl).pipe(
          Effect.flatMap(HttpClientResponse.schemaBodyJson(UserInfo))
        )
        expect(first).toEqual({ sub: "user-1", email: "ada@example.com" })
        expect(oidc.tokenRequests()).toBe(1)
        expect(oidc.userinfoRequests()).toBe(1)

        const revoked = (yield* saved).access_token
        yield* Effect.promise(() => oidc.revokeAccessTokenOnly(revoked))
        // Refreshed seconds ago: only the server's 401 can make it refresh now.
        const second = yield* userinfo(oidc.userinfoUrl)
        expect(second.status).toBe(200)
        expect(oidc.userinfoRequests()).toBe(3)
        expect(oidc.tokenRequests()).toBe(2)
        expect((yield* saved).access_token).not.toBe(revoked)
      }).pipe(Effect.provide(stackFor(home, oidc)))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("the refresh token revoked too: the poisoned error after exactly one refresh request, then no request at all", () =>
    Effect.gen(function*() {
      const oidc = yield* Oidc.start
      const { home, saved } = yield* signedIn(oidc)
      yield* Effect.gen(function*() {
        expect((yield* userinfo(oidc.userinfoUrl)).status).toBe(200)
        const tokens = yield* saved
        yield* Effect.promise(() => oidc.revokeToken(tokens.access_token, "access_token"))
        yield* Effect.promise(() => oidc.revokeToken(tokens.refresh_token, "refresh_token"))
        const before = oidc.tokenRequests()

        const error = yield* Effect.flip(userinfo(oidc.userinfoUrl))
        expect(error).toMatchObject({
          _tag: "CredentialsUnavailableError",
          reason: "poisoned",
          refreshReason: "invalid_grant"
        })
        expect(error.message).toContain("sign in again")
        expect(oidc.tokenRequests() - before).toBe(1)
        const userinfoRequests = oidc.userinfoRequests()

        for (let i = 0; i < 20; i++) {
          expect((yield* Effect.flip(userinfo(oidc.userinfoUrl)))._tag).toBe("CredentialsUnavailableError")
        }
        expect(oidc.tokenRequests() - before).toBe(1)
        expect(oidc.userinfoRequests()).toBe(userinfoRequests)
      }).pipe(Effect.provide(stackFor(home, oidc)))
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("two processes sharing one auth.json", () => {
  it.scopedLive("both get 401 for the same token: one refresh request in total, and both succeed", () =>
    Effect.gen(function*() {
      const home = tempHome()
      const fs = yield* FileSystem.FileSystem
      yield* fs.writeFileString(
        `${home}/auth.json`,
        JSON.stringify(chatgptJson({ now: Date.now(), refreshedAgo: 1_000 }))
      )
      const endpoint = yield* TokenEndpoint.make(yield* TokenEndpoint.rotating(secrets.refresh))
      // The API answers no 401 before both processes have asked with the same token.
      let waiting: Array<() => void> = []
      const api = yield* Api.make((request) =>
        request.token !== secrets.access ? Effect.succeed(200) : Effect.async<number>((resume) => {
          waiting.push(() => resume(Effect.succeed(401)))
          if (waiting.length === 2) {
            for (const wake of waiting) wake()
            waiting = []
          }
        })
      )
      const callers = [0, 1].map(() =>
        spawnScript("api-caller", [api.url], { CODEX_HOME: home, CODEX_REFRESH_TOKEN_URL_OVERRIDE: endpoint.url })
      )
      for (const caller of callers) yield* Effect.promise(() => caller.waitFor((m) => m.method === "ready"))
      for (const caller of callers) caller.send({ method: "go" })
      const answers = yield* Effect.promise(() =>
        Promise.all(callers.map((caller) => caller.waitFor((m) => m.method === "done")))
      )
      expect(answers.map((answer) => answer.params)).toEqual([{ status: 200 }, { status: 200 }])
      expect(yield* endpoint.count).toBe(1)
      const sent = (yield* api.received).map((request) => request.token)
      expect(sent.filter((token) => token === secrets.access)).toHaveLength(2)
      expect(sent.filter((token) => token !== secrets.access)).toHaveLength(2)
      for (const caller of callers) expect(yield* Effect.promise(() => caller.exited)).toBe(0)
    }).pipe(Effect.provide(NodeContext.layer)))
})
