import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted, TestClock } from "effect"
import { AuthManager } from "../src/AuthManager.js"
import { AuthStore } from "../src/AuthStore.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"
import { makeCapture } from "./support/capture.js"
import { httpRefresher } from "./support/endpoint.js"
import { chatgptJson, secrets, tokensOf } from "./support/fixtures.js"
import { poll } from "./support/manager.js"

const allSecrets = [...Object.values(secrets), "rt-1", "login-refresh-SECRET"]

describe("no token reaches a log line, an error message, a span or a metric", () => {
  it.scoped("across poison, outage, recovery, rotation, sign-in, sign-out and a corrupt file", () =>
    Effect.gen(function*() {
      const capture = makeCapture()
      const fs = yield* FileSystem.FileSystem
      const home = yield* fs.makeTempDirectoryScoped()
      yield* fs.writeFileString(`${home}/auth.json`, JSON.stringify(chatgptJson()))
      const endpoint = yield* TokenEndpoint.make(TokenEndpoint.codedError(401, "refresh_token_reused"))
      const layer = AuthManager.layer.pipe(
        Layer.provideMerge(Layer.merge(AuthStore.layerFileWith({ codexHome: home }), httpRefresher(endpoint.url))),
        Layer.provide(NodeContext.layer)
      )
      const errors: Array<string> = []
      const record = (error: Error) => Effect.sync(() => errors.push(error.message, String(error), JSON.stringify(error)))

      yield* Effect.gen(function*() {
        const auth = yield* AuthManager
        yield* poll()
        yield* auth.refresh.pipe(Effect.tapError(record), Effect.ignore)
        // An outage, then a rotating provider.
        yield* auth.loginWithTokens(tokensOf(secrets.newAccess, secrets.newRefresh))
        yield* endpoint.setBehaviour(TokenEndpoint.codedError(503, "unavailable"))
        yield* TestClock.adjust("1 minute")
        yield* poll()
        yield* auth.refresh.pipe(Effect.tapError(record), Effect.ignore)
        yield* endpoint.setBehaviour(yield* TokenEndpoint.rotating(secrets.newRefresh))
        yield* TestClock.adjust("10 minutes")
        yield* poll()
        yield* auth.loginWithApiKey(Redacted.make(secrets.apiKey))
        yield* auth.loginWithTokens(tokensOf(secrets.access, "login-refresh-SECRET"))
        yield* auth.logout
        // A corrupt file: reported, never quoted.
        yield* fs.writeFileString(`${home}/auth.json`, `{"tokens": {"refresh_token": "${secrets.refresh}"`)
        yield* auth.reload.pipe(Effect.tapError(record), Effect.ignore)
      }).pipe(Effect.provide(Layer.merge(layer, capture.layer)))

      expect(yield* endpoint.count).toBe(3)
      const text = `${yield* capture.text}\n${errors.join("\n")}`
      expect(text).toContain("span AuthManager.refreshFlight")
      expect(text).toContain("Refresh token is dead")
      expect(text).toContain("not valid JSON")
      if (process.env.SHOW_CAPTURE) console.log(text)
      for (const secret of allSecrets) expect(text).not.toContain(secret)
    }).pipe(Effect.provide(NodeContext.layer)))
})
