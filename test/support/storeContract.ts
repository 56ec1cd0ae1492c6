/**
 * The contract every store backend keeps (memory, the auth.json file,
 * PostgreSQL): one suite, run against each of them by test/Stores.test.ts,
 * test/Stores.file.test.ts and test/e2e/Stores.postgres.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Fiber, Layer, Option, Redacted, Ref, Stream } from "effect"
import * as AuthDocument from "../../src/document/AuthDocument.js"
import { bind } from "../../src/stores/AuthStore.js"
import { CredentialStore } from "../../src/stores/CredentialStore.js"
import { RefreshCoordinator, type SharedHealth } from "../../src/stores/RefreshCoordinator.js"
import { chatgptJson, secrets } from "./fixtures.js"

type Services = CredentialStore | RefreshCoordinator

export interface Backend {
  readonly name: string
  /**
   * A fresh, empty store. Called twice within one test for `second`: two
   * instances over the same storage, as two processes would have.
   */
  readonly layer: () => Promise<{
    readonly first: Layer.Layer<Services, unknown>
    readonly second: Layer.Layer<Services, unknown>
    /** Puts raw text where the key's document lives, as another writer would. */
    readonly writeRaw: (key: string, text: string) => Promise<void>
  }>
  /** Keys this backend can hold: the file holds one credential. */
  readonly keys: ReadonlyArray<string>
  /** Whether a second instance hears the first one's writes through `changes`. */
  readonly hearsOthers: boolean
}

const doc = (refreshToken: string, extra: Record<string, unknown> = {}) =>
  Either.getOrThrow(AuthDocument.decode(chatgptJson({ refreshToken, extra })))

const poisoned = (hash: string): SharedHealth => ({ hash, state: "poisoned", reason: "reused", at: 1 })

export const storeContract = (backend: Backend) =>
  describe(`${backend.name} store contract`, () => {
    const key = backend.keys[0]!
    const setup = Effect.gen(function*() {
      const made = yield* Effect.promise(() => backend.layer())
      const first = yield* Layer.build(made.first)
      const second = yield* Layer.build(made.second)
      const one = (c: typeof first) => ({
        store: Effect.provide(CredentialStore, c),
        coordinator: Effect.provide(RefreshCoordinator, c)
      })
      return {
        a: one(first),
        b: one(second),
        writeRaw: (k: string, text: string) => Effect.promise(() => made.writeRaw(k, text))
      }
    })

    it.scopedLive("an empty key holds the absent snapshot", () =>
      Effect.gen(function*() {
        const { a } = yield* setup
        const stored = yield* Effect.flatMap(a.store, (s) => s.get(key))
        expect(stored.snapshot.hash).toBe("absent")
        expect(Option.isNone(stored.snapshot.document)).toBe(true)
      }))

    it.scopedLive("compare-and-set writes against what was read, and reports a conflict with what is there", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup
        const storeA = yield* a.store
        const storeB = yield* b.store
        const empty = yield* storeA.get(key)
        const first = yield* storeA.compareAndSet(key, empty, Option.some(doc("r1")))
        expect(first._tag).toBe("Written")
        // B read nothing too, and is too late.
        const late = yield* storeB.compareAndSet(key, empty, Option.some(doc("r-late")))
        expect(late._tag).toBe("Conflict")
        if (late._tag !== "Conflict" || first._tag !== "Written") return
        expect(late.current.snapshot.hash).toBe(first.stored.snapshot.hash)
        // Against what is there now, B succeeds, and A then reads B's write.
        const second = yield* storeB.compareAndSet(key, late.current, Option.some(doc("r2")))
        expect(second._tag).toBe("Written")
        const read = yield* storeA.get(key)
        expect(read.snapshot.hash).toBe(AuthDocument.snapshot(doc("r2")).hash)
        expect(Redacted.value(Option.getOrThrow(read.snapshot.document).tokens!.refresh_token)).toBe("r2")
        if (second._tag === "Written") expect(read.revision).toBe(second.stored.revision)
        expect(read.revision).not.toBe(late.current.revision)
      }))

    it.scopedLive("of many writers racing from one read, exactly one wins", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup
        const stores = [yield* a.store, yield* b.store]
        const base = yield* stores[0]!.set(key, Option.some(doc("r0")))
        const results = yield* Effect.forEach(
          Array.from({ length: 8 }, (_, i) => i),
          (i) => stores[i % 2]!.compareAndSet(key, base, Option.some(doc(`racer-${i}`))),
          { concurrency: "unbounded" }
        )
        expect(results.filter((r) => r._tag === "Written")).toHaveLength(1)
      }))

    it.scopedLive("removing is a compare-and-set too; set writes whatever is there", () =>
      Effect.gen(function*() {
        const { a } = yield* setup
        const store = yield* a.store
        const written = yield* store.set(key, Option.some(doc("r1")))
        const stale = yield* store.set(key, Option.some(doc("r2")))
        expect((yield* store.compareAndSet(key, written, Option.none()))._tag).toBe("Conflict")
        expect((yield* store.compareAndSet(key, stale, Option.none()))._tag).toBe("Written")
        expect((yield* store.get(key)).snapshot.hash).toBe("absent")
        expect((yield* store.set(key, Option.none())).snapshot.hash).toBe("absent")
      }))

    it.scopedLive("one key seen as a store: a compare-and-set by hash after a read, also when the same credentials were rewritten meanwhile", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup
        const credentials = yield* a.store
        const other = yield* b.store
        const bound = bind(key, credentials, yield* a.coordinator)
        yield* other.set(key, Option.some(doc("r1")))
        const read = yield* bound.load
        // Another writer writes the very same credentials again: a new revision, the same hash.
        yield* other.set(key, Option.some(doc("r1")))
        const written = yield* bound.compareAndSet(read.hash, Option.some(doc("r2")))
        expect(written._tag).toBe("Written")
        expect((yield* other.get(key)).snapshot.hash).toBe(AuthDocument.snapshot(doc("r2")).hash)
        // Then different credentials: the write against the hash it wrote is refused, with what is there.
        yield* other.set(key, Option.some(doc("r3")))
        const refused = yield* bound.compareAndSet(AuthDocument.snapshot(doc("r2")).hash, Option.some(doc("r4")))
        expect(refused._tag).toBe("Conflict")
        if (refused._tag === "Conflict") expect(refused.current.hash).toBe(AuthDocument.snapshot(doc("r3")).hash)
        expect((yield* other.get(key)).snapshot.hash).toBe(AuthDocument.snapshot(doc("r3")).hash)
      }))

    it.scopedLive("unknown fields survive a rewrite exactly", () =>
      Effect.gen(function*() {
        const { a, writeRaw } = yield* setup
        const store = yield* a.store
        const text = JSON.stringify({ ...chatgptJson(), newer_field: { nested: [1, "two", null] }, zz: true, aa: 1 })
        yield* writeRaw(key, text)
        const read = yield* store.get(key)
        const next = AuthDocument.applyRefresh(
          Option.getOrThrow(read.snapshot.document),
          { accessToken: Redacted.make(secrets.newAccess) },
          new Date(0)
        )
        const result = yield* store.compareAndSet(key, read, Option.some(next))
        expect(result._tag).toBe("Written")
        const after = AuthDocument.toJson(Option.getOrThrow((yield* store.get(key)).snapshot.document))
        expect(after.newer_field).toEqual({ nested: [1, "two", null] })
        expect(after.zz).toBe(true)
        expect(after.aa).toBe(1)
      }))

    it.scopedLive("text that is not a credential document is a read error naming where it is", () =>
      Effect.gen(function*() {
        const { a, writeRaw } = yield* setup
        const store = yield* a.store
        yield* writeRaw(key, "{ not json")
        const error = yield* Effect.flip(store.get(key))
        expect(error._tag).toBe("AuthStoreError")
        expect(error.message).toContain(store.location(key))
        expect(error.message).toContain("not valid JSON")
      }))

    if (backend.keys.length > 1) {
      it.scopedLive("keys are independent", () =>
        Effect.gen(function*() {
          const { a } = yield* setup
          const store = yield* a.store
          const [k1, k2] = backend.keys as [string, string]
          yield* store.set(k1, Option.some(doc("one")))
          expect((yield* store.get(k2)).snapshot.hash).toBe("absent")
          const coordinator = yield* a.coordinator
          const h = (yield* store.get(k1)).snapshot.hash
          yield* coordinator.setHealth(k1, Option.some(poisoned(h)))
          expect(Option.isNone(yield* coordinator.getHealth(k2))).toBe(true)
        }))
    }

    if (backend.hearsOthers) {
      it.scopedLive("another instance hears a write through changes", () =>
        Effect.gen(function*() {
          const { a, b } = yield* setup
          const storeA = yield* a.store
          const storeB = yield* b.store
          const heard = yield* Deferred.make<void>()
          yield* storeB.changes(key).pipe(
            Stream.tap(() => Deferred.succeed(heard, undefined)),
            Stream.runDrain,
            Effect.onInterrupt(() => Effect.void),
            Effect.forkScoped
          )
          // A backend may need a moment to start listening: write until heard (bounded by the test timeout).
          const writer = yield* Effect.gen(function*() {
            for (let i = 0;; i++) {
              yield* storeA.set(key, Option.some(doc(`heard-${i}`)))
              yield* Effect.sleep("200 millis")
            }
          }).pipe(Effect.forkScoped)
          yield* Deferred.await(heard)
          yield* Fiber.interrupt(writer)
        }).pipe(Effect.timeout("10 seconds")))
    }

    it.scopedLive("the refresh lock lets one holder in at a time, across instances", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup
        const coordinators = [yield* a.coordinator, yield* b.coordinator]
        const inside = yield* Ref.make(0)
        const most = yield* Ref.make(0)
        yield* Effect.forEach(
          Array.from({ length: 6 }, (_, i) => i),
          (i) =>
            coordinators[i % 2]!.withRefreshLock(key)(
              Effect.gen(function*() {
                const now = yield* Ref.updateAndGet(inside, (n) => n + 1)
                yield* Ref.update(most, (m) => Math.max(m, now))
                yield* Effect.sleep("20 millis")
                yield* Ref.update(inside, (n) => n - 1)
              })
            ),
          { concurrency: "unbounded" }
        )
        expect(yield* Ref.get(most)).toBe(1)
      }))

    it.scopedLive("health is shared for one snapshot only, and a new credential starts healthy", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup
        const store = yield* a.store
        const written = yield* store.set(key, Option.some(doc("r1")))
        const h = written.snapshot.hash
        yield* (yield* a.coordinator).setHealth(key, Option.some(poisoned(h)))
        const seen = yield* (yield* b.coordinator).getHealth(key)
        expect(Option.map(seen, (s) => [s.hash, s.state])).toEqual(Option.some([h, "poisoned"]))
        yield* store.compareAndSet(key, written, Option.some(doc("r2")))
        const next = (yield* store.get(key)).snapshot.hash
        // Whatever a backend keeps, nothing applies to the new snapshot.
        const after = yield* (yield* b.coordinator).getHealth(key)
        expect(Option.exists(after, (s) => s.hash === next)).toBe(false)
        // And a record for the old snapshot is not written over the new credential where that is checked.
        yield* (yield* a.coordinator).setHealth(key, Option.some(poisoned(h)))
        expect(Option.exists(yield* (yield* b.coordinator).getHealth(key), (s) => s.hash === next)).toBe(false)
        yield* (yield* a.coordinator).setHealth(key, Option.none())
        expect(Option.isNone(yield* (yield* b.coordinator).getHealth(key))).toBe(true)
      }))
  })
