import { sha256Hex } from "@effect-auth-manager/core/canonicalJson"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { HttpClient } from "effect/http"

it.effect("runs under Node 22 with Effect 4's HTTP client and the shared core", () =>
  Effect.gen(function*() {
    const [major] = process.versions.node.split(".").map(Number)
    assert.isAtLeast(major!, 22)
    const client = yield* HttpClient.HttpClient
    assert.isFunction(client.execute)
    assert.strictEqual(sha256Hex("").length, 64)
  }).pipe(Effect.provide(NodeHttpClient.layerUndici)))
