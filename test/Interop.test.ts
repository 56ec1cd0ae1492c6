import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { AuthManager } from "../src/manager/AuthManager.js"
import { TokenRefresher } from "../src/oauth/TokenRefresher.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import { tokensOf } from "./support/fixtures.js"
import { rotated } from "./support/manager.js"

const fixture = (name: string) => readFileSync(join(import.meta.dirname, "fixtures", name), "utf8")

const inHome = <A, E>(body: (home: string) => Effect.Effect<A, E, AuthManager | AuthStore | FileSystem.FileSystem>) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped()).pipe(
    Effect.flatMap((home) =>
      body(home).pipe(Effect.provide(
        Layer.scoped(AuthManager, AuthManager.make({})).pipe(
          Layer.provideMerge(
            Layer.merge(
              Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home })),
              TokenRefresher.layerTest([rotated("a2", "r2")])
            )
          )
        )
      ))
    ),
    Effect.provide(NodeContext.layer)
  )

describe("auth.json written by the Codex CLI, and for it", () => {
  for (const name of ["codex-auth-chatgpt.json", "codex-auth-apikey.json"]) {
    it.scoped(`${name} loads and is written back with the same content`, () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const home = yield* fs.makeTempDirectoryScoped()
        yield* fs.writeFileString(`${home}/auth.json`, fixture(name))
        yield* Effect.gen(function*() {
          const store = yield* AuthStore
          const loaded = yield* store.load
          const saved = yield* store.save(Option.getOrThrow(loaded.document))
          expect(saved.hash).toBe(loaded.hash)
          expect(JSON.parse(yield* fs.readFileString(`${home}/auth.json`))).toEqual(JSON.parse(fixture(name)))
        }).pipe(Effect.provide(Layer.effect(AuthStore, AuthStore.makeFile({ codexHome: home }))))
      }).pipe(Effect.provide(NodeContext.layer)))
  }

  it.scoped("what this library writes has every field the Codex CLI writes, before and after a refresh", () =>
    inHome((home) =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const auth = yield* AuthManager
        yield* auth.loginWithTokens(tokensOf("a1", "r1"))
        const keys = (json: any) => ({ top: Object.keys(json).sort(), tokens: Object.keys(json.tokens).sort() })
        const expected = {
          top: ["OPENAI_API_KEY", "auth_mode", "last_refresh", "tokens"],
          tokens: ["access_token", "account_id", "id_token", "refresh_token"]
        }
        const written = JSON.parse(yield* fs.readFileString(`${home}/auth.json`))
        expect(keys(written)).toEqual(expected)
        expect(written.OPENAI_API_KEY).toBeNull()
        expect(Number.isNaN(Date.parse(written.last_refresh))).toBe(false)
        // Past the minimum interval, a refresh rewrites the file: same fields.
        const store = yield* AuthStore
        yield* store.save({ ...Option.getOrThrow((yield* store.load).document), last_refresh: "2020-01-01T00:00:00Z" })
        yield* auth.reload
        yield* auth.refresh
        const refreshed = JSON.parse(yield* fs.readFileString(`${home}/auth.json`))
        expect(keys(refreshed)).toEqual(expected)
        expect(refreshed.tokens.refresh_token).toBe("r2")
      })
    ))
})
