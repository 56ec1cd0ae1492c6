import { FileSystem } from "@effect/platform"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Option, Redacted } from "effect"
import { AuthManager } from "../../src/manager/AuthManager.js"
import { layerNode } from "../../src/node/layerNode.js"
import { AuthStore } from "../../src/stores/AuthStore.js"
import { idToken } from "../support/fixtures.js"
import * as Oidc from "../support/oidc.js"

const tenDaysAgo = () => new Date(Date.now() - 10 * 86_400_000).toISOString()

/** An auth.json for a refresh token of the OIDC server; opaque tokens, last refreshed ten days ago (stale). */
const authJson = (refreshToken: string, access = "opaque-access-token-of-a-previous-sign-in") => ({
  auth_mode: "chatgpt",
  OPENAI_API_KEY: null,
  tokens: { id_token: idToken, access_token: access, refresh_token: refreshToken, account_id: "acct_123" },
  last_refresh: tenDaysAgo()
})

/** The Node stack, configured only through `Config`, as a server would be. */
const stackFor = (home: string, oidc: Oidc.OidcServer, secret = Oidc.clientSecret) =>
  layerNode.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
    new Map([
      ["CODEX_HOME", home],
      ["CODEX_REFRESH_TOKEN_URL_OVERRIDE", oidc.tokenUrl],
      ["EFFECT_AUTH_CLIENT_ID", Oidc.clientId],
      ["EFFECT_AUTH_CLIENT_SECRET", secret],
      ["EFFECT_AUTH_REFRESH_BODY", "form"]
    ])
  ))))

const setUp = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const oidc = yield* Oidc.start
  const home = yield* fs.makeTempDirectoryScoped()
  const write = (json: object) => fs.writeFileString(`${home}/auth.json`, JSON.stringify(json))
  const read = Effect.map(fs.readFileString(`${home}/auth.json`), (text) => JSON.parse(text))
  return { oidc, home, write, read }
})

const pollMany = (count: number) =>
  Effect.flatMap(AuthManager, (auth) =>
    Effect.all(
      Array.from({ length: count }, () => auth.getAuthStatus({ includeToken: true, refreshToken: true })),
      { concurrency: 50 }
    ))

describe("against oidc-provider, a certified OpenID Connect server, on 127.0.0.1", () => {
  it.scopedLive("a stale access token is refreshed; the rotated refresh token is saved; the new token is served", () =>
    Effect.gen(function*() {
      const { oidc, home, write, read } = yield* setUp
      const { refreshToken } = yield* Effect.promise(() => oidc.grant())
      yield* write(authJson(refreshToken))
      yield* Effect.gen(function*() {
        const auth = yield* AuthManager
        const status = yield* auth.getAuthStatus({ includeToken: true })
        const saved = yield* read
        expect(oidc.tokenRequests()).toBe(1)
        expect(saved.tokens.refresh_token).not.toBe(refreshToken)
        expect(saved.tokens.access_token).not.toBe("opaque-access-token-of-a-previous-sign-in")
        expect(Redacted.value(status.authToken!)).toBe(saved.tokens.access_token)
        // The id_token the server issued is read for the account.
        expect((yield* auth.readAccount()).account).toMatchObject({ type: "chatgpt", email: "ada@example.com" })
        // Within the minimum interval, explicit refreshes make no request.
        yield* pollMany(20)
        expect(oidc.tokenRequests()).toBe(1)
      }).pipe(Effect.provide(stackFor(home, oidc)))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a grant revoked on the server: invalid_grant poisons the snapshot, and 1,000 further polls make no request", () =>
    Effect.gen(function*() {
      const { oidc, home, write } = yield* setUp
      const { grantId, refreshToken } = yield* Effect.promise(() => oidc.grant())
      yield* write(authJson(refreshToken))
      yield* Effect.promise(() => oidc.revoke(grantId))
      yield* Effect.gen(function*() {
        const auth = yield* AuthManager
        const error = yield* Effect.flip(auth.refresh)
        expect(error).toMatchObject({ _tag: "PermanentRefreshError", reason: "invalid_grant", status: 400 })
        expect(oidc.tokenRequests()).toBe(1)
        const answers = yield* pollMany(1000)
        expect(answers.every((a) => a.authMethod === "chatgpt" && a.authToken === null)).toBe(true)
        expect(oidc.tokenRequests()).toBe(1)
      }).pipe(Effect.provide(stackFor(home, oidc)))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a refresh token replayed from an older snapshot is refused; a fresh grant written to auth.json clears the poison", () =>
    Effect.gen(function*() {
      const { oidc, home, write, read } = yield* setUp
      const { refreshToken } = yield* Effect.promise(() => oidc.grant())
      yield* write(authJson(refreshToken))
      // A first process refreshes and rotates the token…
      yield* Effect.flatMap(AuthManager, (auth) => auth.refresh).pipe(Effect.provide(stackFor(home, oidc)))
      expect((yield* read).tokens.refresh_token).not.toBe(refreshToken)
      // …then an old copy of auth.json comes back (a backup restored, a second machine).
      yield* write(authJson(refreshToken))
      yield* Effect.gen(function*() {
        const auth = yield* AuthManager
        const error = yield* Effect.flip(auth.refresh)
        expect(error).toMatchObject({ _tag: "PermanentRefreshError", reason: "invalid_grant" })
        yield* pollMany(100)
        expect(oidc.tokenRequests()).toBe(2)
        expect((yield* auth.state).status).toBe("poisoned")
        // A new sign-in elsewhere: a fresh grant written to auth.json.
        const fresh = yield* Effect.promise(() => oidc.grant())
        yield* write(authJson(fresh.refreshToken))
        yield* auth.reload
        expect((yield* auth.state).status).toBe("healthy")
        const status = yield* auth.getAuthStatus({ includeToken: true })
        expect(oidc.tokenRequests()).toBe(3)
        expect(Redacted.value(status.authToken!)).toBe((yield* read).tokens.access_token)
      }).pipe(Effect.provide(stackFor(home, oidc)))
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("its RFC 6749 error bodies map to the library's reasons: a wrong client secret is invalid_client", () =>
    Effect.gen(function*() {
      const { oidc, home, write } = yield* setUp
      const { refreshToken } = yield* Effect.promise(() => oidc.grant())
      yield* write(authJson(refreshToken))
      yield* Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.flatMap(AuthManager, (auth) => auth.refresh))
        expect(error).toMatchObject({ _tag: "PermanentRefreshError", reason: "invalid_client", status: 401 })
        const stored = yield* Effect.flatMap(AuthStore, (store) => store.load)
        expect(Option.getOrThrow(stored.document).tokens?.refresh_token.pipe(Redacted.value)).toBe(refreshToken)
      }).pipe(Effect.provide(stackFor(home, oidc, "not-the-secret")))
    }).pipe(Effect.provide(NodeContext.layer)))
})
