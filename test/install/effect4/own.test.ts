// eslint-disable-next-line @typescript-eslint/ban-ts-comment
// @ts-nocheck: an Effect 4 program, which this repository's Effect 3 compiler (it reads test/) cannot check;
// test/install copies it into the fresh Effect 4 app without these first three lines.
// The first snippet of "Tests of your own" (docs/testing.md) in its Effect 4 form (docs/editions.md):
// the same test, with the Effect 4 edition's package and @effect/vitest for Effect 4.
import {
  AuthManager,
  AuthStore,
  Configuration,
  PermanentRefreshError,
  TokenRefresher
} from "@effect-auth-manager/effect4"
import { TokenEndpoint, TokenRefresherTest } from "@effect-auth-manager/effect4/testing"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"

const signedIn = {
  auth_mode: "chatgpt",
  tokens: {
    id_token: TokenEndpoint.unsignedJwt({ email: "ada@example.com" }),
    access_token: "at-1",
    refresh_token: "rt-1"
  }
}

// The endpoint says the refresh token was already used, on every call.
const TestLayer = AuthManager.layer.pipe(
  Layer.provideMerge(Layer.merge(
    AuthStore.layerMemory(signedIn),
    TokenRefresher.layerTest([Effect.fail(new PermanentRefreshError({ reason: "reused" }))])
  )),
  // The defaults, set in code: no environment variable is read.
  Layer.provide(Configuration.layer())
)

describe("a dead refresh token", () => {
  it.effect("is asked once, then withheld from every poll", () =>
    Effect.gen(function*() {
      const auth = yield* AuthManager
      for (let poll = 0; poll < 10; poll++) {
        const status = yield* auth.getAuthStatus({ includeToken: true, refreshToken: true })
        expect(status.authMethod).toBe("chatgpt")
        expect(status.authToken).toBeNull()
      }
      const calls = yield* Effect.flatMap(TokenRefresherTest, (test) => test.calls)
      expect(calls).toHaveLength(1)
    }).pipe(Effect.provide(TestLayer)))
})
