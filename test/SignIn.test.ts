import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Option, Redacted, TestClock } from "effect"
import { AuthManager } from "../src/AuthManager.js"
import { AuthStore } from "../src/AuthStore.js"
import * as OAuthProvider from "../src/OAuthProvider.js"
import { SignIn } from "../src/SignIn.js"
import * as CodexIssuer from "../src/testing/CodexIssuer.js"
import { TokenRefresher } from "../src/TokenRefresher.js"
import { dead } from "./support/manager.js"

/** The sign-in stack over a memory store, for a Codex issuer, on ephemeral ports. */
const stack = (issuer: string, settings: { readonly timeout?: Duration.Duration } = {}) =>
  SignIn.layerWith(OAuthProvider.codex({ issuer, ports: [0] }), settings).pipe(
    Layer.provideMerge(AuthManager.layer.pipe(
      Layer.provideMerge(Layer.merge(AuthStore.layerMemory(), TokenRefresher.layerTest([dead()])))
    )),
    Layer.provideMerge(NodeHttpClient.layerUndici)
  )

/** What a browser does: follows the redirects by plain HTTP requests; returns each hop. */
const browse = (url: string) =>
  Effect.promise(async () => {
    const hops: Array<{ readonly url: string; readonly status: number; readonly body: string }> = []
    let next: string | null = url
    while (next !== null && hops.length < 5) {
      const response: Response = await fetch(next, { redirect: "manual" })
      const body = await response.text()
      hops.push({ url: next, status: response.status, body })
      const location = response.headers.get("location")
      next = location === null ? null : new URL(location, next).toString()
    }
    return hops
  })

describe("SignIn, Codex profile, in process", () => {
  it.live("a browser sign-in: authorize, callback, exchange, save, success page", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      const outcome = yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        const login = yield* signIn.startBrowser()
        const url = new URL(login.authUrl)
        expect([...url.searchParams.keys()]).toEqual([
          "response_type", "client_id", "redirect_uri", "scope", "code_challenge", "code_challenge_method",
          "id_token_add_organizations", "codex_cli_simplified_flow", "state", "originator"
        ])
        const hops = yield* browse(login.authUrl)
        expect(hops.map((hop) => hop.status)).toEqual([302, 302, 200])
        expect(hops[2]!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/success$/)
        expect(hops[2]!.body).toContain("You are signed in")
        const state = yield* login.await
        expect(state).toMatchObject({ method: "chatgpt", email: "ada@example.com", planType: "plus" })
        const stored = yield* Effect.flatMap(AuthStore, (store) => store.load)
        const tokens = Option.getOrThrow(stored.document).tokens!
        expect(tokens.account_id).toBe("acct_test_1")
        expect(Redacted.value(tokens.refresh_token)).toMatch(/^rt_SECRET_/)
        for (const hop of hops.slice(1)) {
          expect(hop.body).not.toMatch(/SECRET|eyJ/)
        }
        return state
      }).pipe(Effect.provide(stack(issuer.issuer)))
      expect(outcome.method).toBe("chatgpt")
      const exchange = (yield* issuer.received).find((r) => r.path === "/oauth/token")!
      expect(exchange.contentType).toBe("application/x-www-form-urlencoded")
      expect(exchange.body).toMatch(/^grant_type=authorization_code&code=ac_SECRET_[\w-]+&redirect_uri=http%3A%2F%2F127\.0\.0\.1%3A\d+%2Fauth%2Fcallback&client_id=app_EMoamEEZ73f0CkXaXp7hrann&code_verifier=[\w-]{86}$/)
    }).pipe(Effect.scoped))

  it.effect("a sign-in not completed in 10 minutes is abandoned: nothing saved, its server closed", () =>
    Effect.gen(function*() {
      const issuer = yield* CodexIssuer.make()
      yield* Effect.gen(function*() {
        const signIn = yield* SignIn
        const login = yield* signIn.startBrowser()
        const waiting = yield* Effect.fork(login.await)
        yield* TestClock.adjust(Duration.minutes(9))
        expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
        yield* TestClock.adjust(Duration.minutes(1))
        expect(Exit.isFailure(yield* Fiber.await(waiting))).toBe(true)
        const error = yield* Effect.flip(login.await)
        expect(error.reason).toBe("timeout")
        expect((yield* Effect.flatMap(AuthManager, (auth) => auth.state)).method).toBe(null)
        // The callback server is gone: the browser can no longer come back.
        const refused = yield* Effect.promise(() => fetch(login.redirectUri).then(() => false, () => true))
        expect(refused).toBe(true)
        expect(yield* signIn.cancel(login.loginId)).toBe("notFound")
      }).pipe(Effect.provide(stack(issuer.issuer)))
    }).pipe(Effect.scoped))
})
