import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, FileSystem, Layer } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { AuthManager } from "../src/manager/AuthManager.js"
import { layerNode, layerNodeHttpClient } from "../src/node/layerNode.js"
import * as TokenEndpoint from "../src/testing/TokenEndpoint.js"

describe("layerNodeHttpClient", () => {
  it.effect("a real Node client, loaded on its first request", () =>
    Effect.gen(function*() {
      const endpoint = yield* TokenEndpoint.make(yield* TokenEndpoint.rotating("rt-0"))
      const response = yield* HttpClient.execute(
        HttpClientRequest.post(endpoint.url).pipe(
          HttpClientRequest.bodyUrlParams({ grant_type: "refresh_token", refresh_token: "rt-0" })
        )
      ).pipe(Effect.provide(layerNodeHttpClient))
      expect(response.status).toBe(200)
      expect(yield* endpoint.count).toBe(1)
    }))
})

describe("layerNode", () => {
  it.effect("reads auth.json under CODEX_HOME, and a refresh rotates the token in that file", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const codexHome = yield* fs.makeTempDirectoryScoped()
      const endpoint = yield* TokenEndpoint.make(yield* TokenEndpoint.rotating("rt-0"))
      yield* fs.writeFileString(
        `${codexHome}/auth.json`,
        JSON.stringify({
          auth_mode: "chatgpt",
          OPENAI_API_KEY: null,
          tokens: {
            id_token: TokenEndpoint.unsignedJwt({ email: "ada@example.com" }),
            access_token: TokenEndpoint.unsignedJwt({ exp: 4_102_444_800 }),
            refresh_token: "rt-0",
            account_id: "acct_123"
          },
          last_refresh: new Date(-10 * 86_400_000).toISOString()
        })
      )
      const environment = ConfigProvider.layer(ConfigProvider.fromUnknown({
        CODEX_HOME: codexHome,
        EFFECT_AUTH_CREDENTIALS_STORE: "file",
        CODEX_REFRESH_TOKEN_URL_OVERRIDE: endpoint.url
      }))
      const state = yield* Effect.gen(function*() {
        const auth = yield* AuthManager
        expect((yield* auth.state).email).toBe("ada@example.com")
        yield* auth.refresh
        return yield* auth.state
      }).pipe(Effect.provide(layerNode.pipe(Layer.provide(environment))))
      expect(state.method).toBe("chatgpt")
      const saved = JSON.parse(yield* fs.readFileString(`${codexHome}/auth.json`))
      expect(saved.tokens.refresh_token).toBe("rt-1")
      expect(yield* endpoint.count).toBe(1)
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})
