// One contract, every backend: memory and the auth.json file here (two instances over the same storage, as
// two managers of one process, or two processes sharing CODEX_HOME, have).
import * as Core from "@effect-auth-manager/core/lockPrimitive"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { afterAll, afterEach, beforeEach, describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Option, Queue, Redacted, Ref, Result, Stream } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { CredentialStore } from "../src/stores/CredentialStore.js"
import * as FileStore from "../src/stores/FileStore.js"
import * as LockPrimitive from "../src/stores/internal/lockPrimitive.js"
import { RefreshCoordinator, type SharedHealth } from "../src/stores/RefreshCoordinator.js"

type Services = CredentialStore | RefreshCoordinator

// Codex's lock through the addon the repository builds (native/prebuilds), as the published package has it.
const repositoryAddon = Core.find(Core.nodeHost())
beforeEach(() => LockPrimitive.setForTesting(repositoryAddon))
afterEach(() => LockPrimitive.setForTesting(undefined))

interface Backend {
  readonly name: string
  /** A fresh, empty store: two instances over the same storage, and a way to put raw text there. */
  readonly make: () => Effect.Effect<{
    readonly first: Layer.Layer<Services>
    readonly second: Layer.Layer<Services>
    readonly writeRaw: (key: string, text: string) => Effect.Effect<void>
  }>
  /** Keys this backend can hold: the file holds one credential. */
  readonly keys: ReadonlyArray<string>
  /** Whether its change feed emits once when it starts (a first look, not a change). */
  readonly emitsAtStart: boolean
}

const chatgptJson = (refreshToken: string, extra: Record<string, unknown> = {}) => ({
  auth_mode: "chatgpt",
  OPENAI_API_KEY: null,
  tokens: {
    id_token: "header.eyJlbWFpbCI6ImFkYUBleGFtcGxlLmNvbSJ9.signature",
    access_token: "access-token-SECRET-1",
    refresh_token: refreshToken,
    account_id: "acct_123"
  },
  last_refresh: "2026-01-01T00:00:00.000Z",
  ...extra
})

const doc = (refreshToken: string) => Result.getOrThrow(AuthDocument.decode(chatgptJson(refreshToken)))

const poisoned = (hash: string): SharedHealth => ({ hash, state: "poisoned", reason: "reused", at: 1 })

const storeContract = (backend: Backend) =>
  describe(`${backend.name} store contract`, () => {
    const key = backend.keys[0]!
    const setup = Effect.gen(function*() {
      const made = yield* backend.make()
      const services = (context: Context.Context<Services>) => ({
        store: Context.get(context, CredentialStore),
        coordinator: Context.get(context, RefreshCoordinator)
      })
      return {
        a: services(yield* Layer.build(made.first)),
        b: services(yield* Layer.build(made.second)),
        writeRaw: made.writeRaw
      }
    })

    it.live("an empty key holds the absent snapshot", () =>
      Effect.gen(function*() {
        const { a } = yield* setup
        const stored = yield* a.store.get(key)
        expect(stored.snapshot.hash).toBe("absent")
        expect(Option.isNone(stored.snapshot.document)).toBe(true)
      }))

    it.live("compare-and-set writes against what was read, and reports a conflict with what is there", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup
        const empty = yield* a.store.get(key)
        const first = yield* a.store.compareAndSet(key, empty, Option.some(doc("r1")))
        expect(first._tag).toBe("Written")
        // B read nothing too, and is too late.
        const late = yield* b.store.compareAndSet(key, empty, Option.some(doc("r-late")))
        if (late._tag !== "Conflict" || first._tag !== "Written") return expect.fail("expected a conflict")
        expect(late.current.snapshot.hash).toBe(first.stored.snapshot.hash)
        // Against what is there now, B succeeds, and A then reads B's write.
        const second = yield* b.store.compareAndSet(key, late.current, Option.some(doc("r2")))
        if (second._tag !== "Written") return expect.fail("expected a write")
        const read = yield* a.store.get(key)
        expect(read.snapshot.hash).toBe(AuthDocument.snapshot(doc("r2")).hash)
        expect(Redacted.value(Option.getOrThrow(read.snapshot.document).tokens!.refresh_token)).toBe("r2")
        expect(read.revision).toBe(second.stored.revision)
        expect(read.revision).not.toBe(late.current.revision)
      }))

    it.live("of many writers racing from one read, exactly one wins", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup
        const stores = [a.store, b.store]
        const base = yield* a.store.set(key, Option.some(doc("r0")))
        const results = yield* Effect.forEach(
          Array.from({ length: 8 }, (_, i) => i),
          (i) => stores[i % 2]!.compareAndSet(key, base, Option.some(doc(`racer-${i}`))),
          { concurrency: "unbounded" }
        )
        expect(results.filter((r) => r._tag === "Written")).toHaveLength(1)
      }))

    it.live("removing is a compare-and-set too; set writes whatever is there", () =>
      Effect.gen(function*() {
        const { a } = yield* setup
        const written = yield* a.store.set(key, Option.some(doc("r1")))
        const stale = yield* a.store.set(key, Option.some(doc("r2")))
        expect((yield* a.store.compareAndSet(key, written, Option.none()))._tag).toBe("Conflict")
        expect((yield* a.store.compareAndSet(key, stale, Option.none()))._tag).toBe("Written")
        expect((yield* a.store.get(key)).snapshot.hash).toBe("absent")
        expect((yield* a.store.set(key, Option.none())).snapshot.hash).toBe("absent")
      }))

    it.live("unknown fields survive a rewrite exactly", () =>
      Effect.gen(function*() {
        const { a, writeRaw } = yield* setup
        const text = JSON.stringify(
          chatgptJson("r1", { newer_field: { nested: [1, "two", null] }, zz: true, aa: 1.50 })
        )
        yield* writeRaw(key, text.replace("1.5", "1.50"))
        const read = yield* a.store.get(key)
        const next = AuthDocument.applyRefresh(
          Option.getOrThrow(read.snapshot.document),
          { accessToken: Redacted.make("access-token-SECRET-4") },
          new Date(0)
        )
        expect((yield* a.store.compareAndSet(key, read, Option.some(next)))._tag).toBe("Written")
        const after = yield* a.store.get(key)
        const json = AuthDocument.toJson(Option.getOrThrow(after.snapshot.document))
        expect(json.newer_field).toEqual({ nested: [1, "two", null] })
        expect(json.zz).toBe(true)
        // The number as it was written, not as JavaScript would print it.
        expect(AuthDocument.toText(Option.getOrThrow(after.snapshot.document))).toContain("\"aa\": 1.50")
      }))

    it.live("text that is not a credential document is a read error naming where it is", () =>
      Effect.gen(function*() {
        const { a, writeRaw } = yield* setup
        yield* writeRaw(key, "{ not json")
        const error = yield* Effect.flip(a.store.get(key))
        expect(error._tag).toBe("AuthStoreError")
        expect(error.message).toContain(a.store.location(key))
        expect(error.message).toContain("not valid JSON")
      }))

    if (backend.keys.length > 1) {
      it.live("keys are independent", () =>
        Effect.gen(function*() {
          const { a } = yield* setup
          const [k1, k2] = backend.keys as [string, string]
          const written = yield* a.store.set(k1, Option.some(doc("one")))
          expect((yield* a.store.get(k2)).snapshot.hash).toBe("absent")
          yield* a.coordinator.setHealth(k1, Option.some(poisoned(written.snapshot.hash)))
          expect(Option.isNone(yield* a.coordinator.getHealth(k2))).toBe(true)
        }))
    }

    it.live("another instance hears a write through changes", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup
        const heard = yield* Queue.unbounded<void>()
        // Started at once, so that it listens before the write below; a backend that says where it
        // stands at start (the file store's first look at the file) is listening once it has said so.
        yield* b.store.changes(key).pipe(
          Stream.runForEach((change) => Queue.offer(heard, change)),
          Effect.forkScoped({ startImmediately: true })
        )
        if (backend.emitsAtStart) yield* Queue.take(heard)
        yield* a.store.set(key, Option.some(doc("heard")))
        yield* Queue.take(heard)
      }).pipe(Effect.timeout("10 seconds")))

    it.live("the refresh lock lets one holder in at a time, across instances", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup
        const coordinators = [a.coordinator, b.coordinator]
        const inside = yield* Ref.make(0)
        const most = yield* Ref.make(0)
        const count = yield* Ref.make(0)
        yield* Effect.forEach(
          Array.from({ length: 6 }, (_, i) => i),
          (i) =>
            coordinators[i % 2]!.withRefreshLock(key)(
              Effect.gen(function*() {
                const now = yield* Ref.updateAndGet(inside, (n) => n + 1)
                yield* Ref.update(most, (m) => Math.max(m, now))
                // A read-modify-write across yields: two holders inside at once would lose a count.
                const seen = yield* Ref.get(count)
                for (let i = 0; i < 20; i++) yield* Effect.yieldNow
                yield* Ref.set(count, seen + 1)
                yield* Ref.update(inside, (n) => n - 1)
              })
            ),
          { concurrency: "unbounded" }
        )
        expect(yield* Ref.get(count)).toBe(6)
        expect(yield* Ref.get(most)).toBe(1)
      }))

    it.live("health is shared for one snapshot only, and a new credential starts healthy", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup
        const written = yield* a.store.set(key, Option.some(doc("r1")))
        const h = written.snapshot.hash
        yield* a.coordinator.setHealth(key, Option.some(poisoned(h)))
        const seen = yield* b.coordinator.getHealth(key)
        expect(Option.map(seen, (s) => [s.hash, s.state])).toEqual(Option.some([h, "poisoned"]))
        yield* a.store.compareAndSet(key, written, Option.some(doc("r2")))
        const next = (yield* a.store.get(key)).snapshot.hash
        expect(Option.exists(yield* b.coordinator.getHealth(key), (s) => s.hash === next)).toBe(false)
        yield* a.coordinator.setHealth(key, Option.none())
        expect(Option.isNone(yield* b.coordinator.getHealth(key))).toBe(true)
      }))
  })

storeContract({
  name: "memory",
  keys: ["default", "other"],
  emitsAtStart: false,
  make: () =>
    Effect.gen(function*() {
      // Two stores over one memory backend: what two managers of one process share.
      const backend = yield* CredentialStore.makeMemoryBackend()
      const coordinator = yield* RefreshCoordinator.makeMemoryBackend
      const layer = Layer.mergeAll(
        Layer.succeed(CredentialStore, CredentialStore.make(backend)),
        Layer.succeed(RefreshCoordinator, RefreshCoordinator.make(coordinator))
      )
      return {
        first: layer,
        second: layer,
        writeRaw: (key, text) =>
          Effect.asVoid(Effect.orDie(backend.swap(key, Option.none(), Option.some({ text, hash: "raw" }))))
      }
    })
})

const homes: Array<string> = []
afterAll(() => homes.forEach((home) => rmSync(home, { recursive: true, force: true })))
const platform = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)

storeContract({
  name: "auth.json file",
  keys: ["default"],
  emitsAtStart: true,
  make: () =>
    Effect.sync(() => {
      const codexHome = mkdtempSync(join(tmpdir(), "effect4-auth-file-contract-"))
      homes.push(codexHome)
      const layer = () =>
        FileStore.layer({ codexHome, pollInterval: Duration.millis(100), commitLockWait: Duration.seconds(2) }).pipe(
          Layer.provide(platform)
        )
      return {
        first: layer(),
        second: layer(),
        writeRaw: (_key, text) => Effect.sync(() => writeFileSync(join(codexHome, "auth.json"), text, { mode: 0o600 }))
      }
    })
})
