// The store contract (test/support/storeContract.ts) on the auth.json file: two instances over one folder,
// as two processes sharing CODEX_HOME have.
import { NodeContext } from "@effect/platform-node"
import * as FileSystem from "@effect/platform/FileSystem"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Either, Layer, Option } from "effect"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Configuration } from "../src/config/Configuration.js"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import { CredentialStore } from "../src/stores/CredentialStore.js"
import * as FileStore from "../src/stores/FileStore.js"
import * as Flock from "../src/stores/internal/flock.js"
import { chatgptJson } from "./support/fixtures.js"
import { storeContract } from "./support/storeContract.js"

const homes: Array<string> = []
const doc = (refreshToken: string) => Either.getOrThrow(AuthDocument.decode(chatgptJson({ refreshToken })))
afterAll(() => homes.forEach((home) => rmSync(home, { recursive: true, force: true })))

storeContract({
  name: "auth.json file",
  keys: ["default"],
  hearsOthers: true,
  layer: async () => {
    const codexHome = mkdtempSync(join(tmpdir(), "effect-auth-file-contract-"))
    homes.push(codexHome)
    const layer = () =>
      FileStore.layer({ codexHome, pollInterval: Duration.millis(100), commitLockWait: Duration.seconds(2) }).pipe(
        Layer.provide(NodeContext.layer)
      )
    return {
      first: layer(),
      second: layer(),
      writeRaw: async (_key, text) => writeFileSync(join(codexHome, "auth.json"), text, { mode: 0o600 })
    }
  }
})

describe("auth.json file as the keyed services", () => {
  const setup = Effect.gen(function*() {
    const codexHome = mkdtempSync(join(tmpdir(), "effect-auth-file-locks-"))
    homes.push(codexHome)
    const { coordinator, credentials } = yield* FileStore.make({ codexHome, commitLockWait: Duration.millis(200) })
    const fs = yield* FileSystem.FileSystem
    return { codexHome, coordinator, credentials, fs }
  }).pipe(Effect.provide(NodeContext.layer))

  it.scopedLive("a compare-and-set waits for Codex's auth.json.lock, not for our refresh lock", () =>
    Effect.gen(function*() {
      const { codexHome, coordinator, credentials, fs } = yield* setup
      const empty = yield* credentials.get("default")
      // Our refresh lock held (a token request in flight elsewhere): a write still goes through.
      const written = yield* coordinator.withRefreshLock("default")(
        credentials.compareAndSet("default", empty, Option.some(doc("r1")))
      )
      expect(written._tag).toBe("Written")
      // Codex holding auth.json.lock: the write gives up after the commit bound, a lock error, nothing written.
      const current = yield* credentials.get("default")
      const error = yield* Flock.withLock(fs, join(codexHome, "auth.json.lock"), { waitAtMost: Duration.seconds(1) })(
        Effect.flip(credentials.compareAndSet("default", current, Option.some(doc("r2"))))
      )
      expect(error.operation).toBe("lock")
      expect((yield* credentials.get("default")).snapshot.hash).toBe(current.snapshot.hash)
      // The lock files stay where they are (Codex's may be held by someone on its inode).
      expect(readdirSync(codexHome).sort()).toEqual(["auth.json", "auth.json.lock", "auth.json.refresh.lock"])
    }))

  it.scopedLive("the health is the sidecar beside auth.json, the file other processes read", () =>
    Effect.gen(function*() {
      const { codexHome, coordinator, credentials } = yield* setup
      const stored = yield* credentials.set("default", Option.some(doc("r1")))
      yield* coordinator.setHealth(
        "default",
        Option.some({ hash: stored.snapshot.hash, state: "poisoned", reason: "reused", at: 1 })
      )
      const sidecar = JSON.parse(readFileSync(join(codexHome, "auth-refresh-state.json"), "utf8"))
      expect(sidecar).toEqual({ hash: stored.snapshot.hash, state: "poisoned", reason: "reused", at: 1 })
    }))

  it.scopedLive("it holds one credential: another key is refused, never mixed in", () =>
    Effect.gen(function*() {
      const { credentials } = yield* setup
      const error = yield* Effect.flip(credentials.set("customer-42", Option.some(doc("r1"))))
      expect(error.message).toContain("holds one credential")
      expect((yield* credentials.get("default")).snapshot.hash).toBe("absent")
    }))
})

describe("FileStore.layerConfig", () => {
  it.scopedLive("reads CODEX_HOME through Config, as AuthStore.layerFile does", () =>
    Effect.gen(function*() {
      const codexHome = mkdtempSync(join(tmpdir(), "effect-auth-file-config-"))
      homes.push(codexHome)
      const provider = ConfigProvider.fromMap(new Map([["CODEX_HOME", codexHome]]))
      const context = yield* Layer.build(
        Layer.mergeAll(FileStore.layerConfig, AuthStore.layerFile).pipe(
          Layer.provide(Layer.merge(NodeContext.layer, Configuration.layerConfig)),
          Layer.provide(Layer.setConfigProvider(provider))
        )
      )
      const credentials = Context.get(context, CredentialStore)
      expect(credentials.location("default")).toBe(join(codexHome, "auth.json"))
      expect(Context.get(context, AuthStore).location).toBe(join(codexHome, "auth.json"))
    }))
})
