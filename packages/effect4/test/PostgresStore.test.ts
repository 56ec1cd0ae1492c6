/**
 * The PostgreSQL store of the Effect 4 edition against a real throwaway cluster: compare-and-set,
 * changes heard through NOTIFY by another replica, migrations run twice (and at once), and a
 * connection limit named with its SQLSTATE.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Option, Redacted, Stream } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient } from "effect/sql"
import packageJson from "../package.json" with { type: "json" }
import * as AuthDocument from "../src/document/AuthDocument.js"
import * as Entry from "../src/postgres/entry.js"
import { PgStore } from "../src/postgres/index.js"
import { migrate, tables } from "../src/postgres/migrations.js"
import { CredentialStore } from "../src/stores/CredentialStore.js"
import { freshPrefix, hearing, useCluster } from "./support/pgCluster.js"

const cluster = useCluster()

const apiKeyDoc = (key: string) => AuthDocument.withApiKey(Option.none(), Redacted.make(key))

const storeLayer = (prefix: string) => PgStore.layer({ url: Redacted.make(cluster.url()), prefix })

/** A client of its own on the cluster, for arranging a test and for looking. */
const client = () =>
  PgClient.make({ url: Redacted.make(cluster.url()), maxConnections: 2 }).pipe(Effect.provide(Reactivity.layer))

/** The credential store of a replica, built in the test's scope (as a replica builds it). */
const replica = (layer: Layer.Layer<CredentialStore, unknown>) =>
  Effect.map(Layer.build(layer), (context) => Context.get(context, CredentialStore))

describe("PgStore (Effect 4)", () => {
  it.live("writes only over what was read (compare-and-set), and reads back the exact text", () =>
    Effect.gen(function*() {
      const store = yield* replica(storeLayer(freshPrefix("cas")))
      const key = "user-1"

      const empty = yield* store.get(key)
      assert.strictEqual(empty.revision, CredentialStore.absentRevision)

      const first = yield* store.compareAndSet(key, empty, Option.some(apiKeyDoc("sk-first")))
      assert.strictEqual(first._tag, "Written")
      const written = yield* store.get(key)
      assert.notStrictEqual(written.revision, CredentialStore.absentRevision)
      assert.strictEqual(Redacted.value(Option.getOrThrow(written.snapshot.document).OPENAI_API_KEY!), "sk-first")

      // A writer that read the key before it held anything finds the first write instead.
      const stale = yield* store.compareAndSet(key, empty, Option.some(apiKeyDoc("sk-stale")))
      assert.strictEqual(stale._tag, "Conflict")
      if (stale._tag === "Conflict") assert.strictEqual(stale.current.revision, written.revision)

      const second = yield* store.compareAndSet(key, written, Option.some(apiKeyDoc("sk-second")))
      assert.strictEqual(second._tag, "Written")
      // The revision that was read is gone: writing against it again is a conflict.
      const again = yield* store.compareAndSet(key, written, Option.some(apiKeyDoc("sk-third")))
      assert.strictEqual(again._tag, "Conflict")

      // A sign-out removes the row; the key then reads as absent again.
      const current = yield* store.get(key)
      yield* store.compareAndSet(key, current, Option.none())
      assert.strictEqual((yield* store.get(key)).revision, CredentialStore.absentRevision)
    }))

  it.live("another replica hears a write through NOTIFY and reads it", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix("notify")
      const writer = yield* replica(storeLayer(prefix))
      const reader = yield* replica(storeLayer(prefix))
      const key = "shared"

      // Every emission makes the reader look again, as a manager does, until it sees the write.
      const seen = reader.changes(key).pipe(
        Stream.mapEffect(() => reader.get(key)),
        Stream.filter((stored) => stored.revision !== CredentialStore.absentRevision),
        Stream.runHead
      )
      const heard = yield* Effect.forkChild(seen, { startImmediately: true })
      const written = yield* writer.set(key, Option.some(apiKeyDoc("sk-shared")))
      const stored = yield* Fiber.join(heard).pipe(Effect.timeout("20 seconds"), Effect.map(Option.getOrThrow))
      assert.strictEqual(stored.revision, written.revision)
    }))

  it.live("over the application's own PgClient (layerWithClient), as over a pool of its own", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix("own_client")
      const own = PgStore.layerWithClient({ prefix }).pipe(
        Layer.provide(PgClient.layer({ url: Redacted.make(cluster.url()), maxConnections: 2 }))
      )
      const viaOwn = yield* replica(own)
      const viaPool = yield* replica(storeLayer(prefix))
      const written = yield* viaOwn.set("user", Option.some(apiKeyDoc("sk-own")))
      assert.strictEqual((yield* viaPool.get("user")).revision, written.revision)
    }))

  it.live("migrations are idempotent, and replicas starting at once take turns", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix("migrate")
      const sql = yield* client()
      const run = Effect.provideService(migrate(prefix), SqlClient.SqlClient, sql)
      const [a, b] = yield* Effect.all([run, run], { concurrency: "unbounded" })
      // One of the two ran both migrations; the other found them done.
      assert.deepStrictEqual([...a, ...b].map(([id]) => id).sort(), [1, 2])
      assert.deepStrictEqual(yield* run, [])
      const t = tables(prefix)
      const found = yield* sql<{ readonly name: string }>`SELECT name FROM ${sql(t.migrations)} ORDER BY migration_id`
      assert.deepStrictEqual(found.map((row) => row.name), ["credentials", "leases"])
    }))

  it.live("a connection limit reached is named with its SQLSTATE and the replica's budget", () =>
    Effect.gen(function*() {
      const sql = yield* client()
      const role = freshPrefix("limited")
      yield* sql.unsafe(`CREATE ROLE "${role}" LOGIN CONNECTION LIMIT 0`)
      const url = new URL(cluster.url())
      url.username = role
      const layer = PgStore.layer({ url: Redacted.make(url.toString()), prefix: role, maxConnections: 3 })
      const store = yield* replica(layer)
      const exit = yield* Effect.exit(store.get("user"))
      assert.isTrue(Exit.isFailure(exit))
      const message = Exit.isFailure(exit) ? String(Option.getOrThrow(Exit.findErrorOption(exit))?.message) : ""
      assert.include(message, "SQLSTATE 53300")
      assert.include(message, "up to 4 connections (a pool of 3 and 1 that listens)")
      // The password never shows; the database's address does.
      assert.include(message, "postgres:")
    }))

  it.live("a database it cannot use at start: the replica starts, fails at once saying why, and connects once it can", () =>
    Effect.gen(function*() {
      const role = freshPrefix("late")
      const url = new URL(cluster.url())
      url.username = role
      const connected = yield* Deferred.make<void>()
      const store = yield* replica(PgStore.layer({ url: Redacted.make(url.toString()), prefix: role })).pipe(
        Effect.provide(hearing("Connected to the credential database", connected))
      )
      const exit = yield* Effect.exit(store.get("user"))
      const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
      assert.strictEqual(error?._tag, "AuthStoreError")
      assert.include(error?.problem, "SQLSTATE 28000")

      // The role appears: the attempts in the background connect, and the store works.
      const sql = yield* client()
      yield* sql.unsafe(`CREATE ROLE "${role}" LOGIN SUPERUSER`)
      yield* Deferred.await(connected).pipe(Effect.timeout("20 seconds"))
      const written = yield* store.set("user", Option.some(apiKeyDoc("sk-late")))
      assert.strictEqual((yield* store.get("user")).revision, written.revision)
    }))

  it.live("a pool size that cannot work is a ConfigError naming it", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(
        Layer.build(PgStore.layer({ url: Redacted.make(cluster.url()), maxConnections: 0 }))
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Exit.findErrorOption(exit) : Option.none()
      assert.include(String(Option.getOrUndefined(error)?.message), "maxConnections")
    }))

  it("the ./postgres entry point loads PgStore, and names the peers package.json declares", () => {
    assert.strictEqual(Entry.PgStore, PgStore)
    const declared: Record<string, string> = packageJson.peerDependencies
    for (const peer of Entry.peers) assert.strictEqual(declared[peer.name], peer.range, peer.name)
  })
})
