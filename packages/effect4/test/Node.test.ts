import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { layerNodeHttpClient } from "../src/node/layerNode.js"
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
