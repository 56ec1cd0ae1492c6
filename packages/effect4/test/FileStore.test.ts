// The auth.json file as the keyed services, with Codex's lock honoured against a real holder
// (util-linux `flock`, which takes flock(2) on auth.json.lock as the Codex CLI does).
import * as Core from "@effect-auth-manager/core/lockPrimitive"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Layer, Option, Result } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Configuration } from "../src/config/Configuration.js"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { AuthStore } from "../src/stores/AuthStore.js"
import { CredentialStore } from "../src/stores/CredentialStore.js"
import * as FileStore from "../src/stores/FileStore.js"
import * as LockPrimitive from "../src/stores/internal/lockPrimitive.js"

const platform = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)
const repositoryAddon = Core.find(Core.nodeHost())
beforeEach(() => LockPrimitive.setForTesting(repositoryAddon))
afterEach(() => LockPrimitive.setForTesting(undefined))

const doc = (refreshToken: string) =>
  Result.getOrThrow(AuthDocument.decode({
    auth_mode: "chatgpt",
    OPENAI_API_KEY: null,
    tokens: { id_token: "h.e30.s", access_token: "a.e30.s", refresh_token: refreshToken, account_id: "acct_1" }
  }))

const tempHome = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "effect4-file-store-"))),
  (home) => Effect.sync(() => rmSync(home, { recursive: true, force: true }))
)

/** `flock` holding `lock` until released; ready once it has said so (it holds the lock then). */
const codexHolding = (lock: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const child = spawn("flock", ["-x", lock, "-c", "echo held; exec cat >/dev/null"], {
        stdio: ["pipe", "pipe", "inherit"]
      })
      await once(child.stdout, "data")
      return child
    }),
    (child) => letGo(child)
  )

const letGo = (child: ChildProcess) =>
  Effect.promise(async () => {
    if (child.exitCode !== null) return
    const exited = once(child, "exit")
    child.stdin!.end()
    await exited
  })

describe("auth.json file as the keyed services", () => {
  const setup = Effect.gen(function*() {
    const codexHome = yield* tempHome
    const services = yield* FileStore.make({ codexHome, commitLockWait: Duration.millis(300) })
    return { codexHome, ...services }
  }).pipe(Effect.provide(platform))

  it.live("a compare-and-set waits for Codex's auth.json.lock, bounded; not for our refresh lock", () =>
    Effect.gen(function*() {
      const { codexHome, coordinator, credentials } = yield* setup
      const empty = yield* credentials.get("default")
      // Our refresh lock held (a token request in flight): a write still goes through.
      const written = yield* coordinator.withRefreshLock("default")(
        credentials.compareAndSet("default", empty, Option.some(doc("r1")))
      )
      expect(written._tag).toBe("Written")
      // Codex holding auth.json.lock: the write gives up after the commit bound, a lock error, nothing written.
      const current = yield* credentials.get("default")
      const codex = yield* codexHolding(join(codexHome, "auth.json.lock"))
      const error = yield* Effect.flip(credentials.compareAndSet("default", current, Option.some(doc("r2"))))
      expect(error.operation).toBe("lock")
      expect(error.message).toContain("auth.json.lock")
      expect(error.message).toContain("Another process is busy with the credentials")
      expect((yield* credentials.get("default")).snapshot.hash).toBe(current.snapshot.hash)
      // Released: the same write goes through.
      yield* letGo(codex)
      expect((yield* credentials.compareAndSet("default", current, Option.some(doc("r2"))))._tag).toBe("Written")
      // The lock files stay where they are (Codex's may be held by someone on its inode).
      expect(readdirSync(codexHome).sort()).toEqual(["auth.json", "auth.json.lock", "auth.json.refresh.lock"])
    }))

  it.live("the health is the sidecar beside auth.json, the file other processes read", () =>
    Effect.gen(function*() {
      const { codexHome, coordinator, credentials } = yield* setup
      const stored = yield* credentials.set("default", Option.some(doc("r1")))
      const health = { hash: stored.snapshot.hash, state: "poisoned", reason: "reused", at: 1 } as const
      yield* coordinator.setHealth("default", Option.some(health))
      expect(JSON.parse(readFileSync(join(codexHome, "auth-refresh-state.json"), "utf8"))).toEqual(health)
    }))

  it.live("it holds one credential: another key is refused, never mixed in", () =>
    Effect.gen(function*() {
      const { credentials } = yield* setup
      const error = yield* Effect.flip(credentials.set("customer-42", Option.some(doc("r1"))))
      expect(error.message).toContain("holds one credential")
      expect((yield* credentials.get("default")).snapshot.hash).toBe("absent")
    }))
})

describe("FileStore.layerConfig", () => {
  it.live("reads CODEX_HOME through Config, as AuthStore.layerFile does", () =>
    Effect.gen(function*() {
      const codexHome = yield* tempHome
      const context = yield* Layer.build(
        Layer.mergeAll(FileStore.layerConfig, AuthStore.layerFile).pipe(
          Layer.provide(Layer.merge(platform, Configuration.layerConfig)),
          Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ CODEX_HOME: codexHome })))
        )
      )
      expect(Context.get(context, CredentialStore).location("default")).toBe(join(codexHome, "auth.json"))
      expect(Context.get(context, AuthStore).location).toBe(join(codexHome, "auth.json"))
    }))
})
