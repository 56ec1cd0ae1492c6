/**
 * The refresh lock of the Effect 4 edition's PostgreSQL store, a lease row with a fence, between
 * two replicas on a real throwaway cluster: one holder at a time (the other waits and is woken by
 * the release's NOTIFY), and a holder whose lease was taken over does not write.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, it } from "@effect/vitest"
import {
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Queue,
  Redacted,
  Ref,
  References,
  Stream
} from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import * as AuthDocument from "../src/document/AuthDocument.js"
import { PgStore } from "../src/postgres/index.js"
import * as Lease from "../src/postgres/lease.js"
import { makeHub } from "../src/postgres/listener.js"
import { migrate, tables } from "../src/postgres/migrations.js"
import { CredentialStore } from "../src/stores/CredentialStore.js"
import { RefreshCoordinator, type SharedHealth } from "../src/stores/RefreshCoordinator.js"
import { freshPrefix, hearing, useCluster } from "./support/pgCluster.js"

const cluster = useCluster()

const apiKeyDoc = (key: string) => AuthDocument.withApiKey(Option.none(), Redacted.make(key))

/** A replica's two services, built in the test's scope. */
const replica = (prefix: string) =>
  Effect.map(
    Layer.build(PgStore.layer({ url: Redacted.make(cluster.url()), prefix })),
    (context) => ({
      store: Context.get(context, CredentialStore),
      coordinator: Context.get(context, RefreshCoordinator)
    })
  )

/** Makes every lease of `prefix` expired, as if its holder had been cut off for longer than its life. */
const expireLeases = (prefix: string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.make({ url: Redacted.make(cluster.url()), maxConnections: 1 }).pipe(
      Effect.provide(Reactivity.layer)
    )
    const expired = yield* sql`UPDATE ${sql(tables(prefix).leases)}
      SET expires_at = clock_timestamp() - interval '1 second' RETURNING credential_key`
    assert.strictEqual(expired.length, 1)
  }).pipe(Effect.scoped)

/**
 * A lease manager of its own on a fresh schema (leases of 30 s, a hub that hears nothing), and how
 * many lease rows each renewal answered, in order.
 */
const leasesOf = (label: string) =>
  Effect.gen(function*() {
    const prefix = freshPrefix(label)
    const t = tables(prefix)
    const sql = yield* PgClient.make({ url: Redacted.make(cluster.url()), maxConnections: 3 }).pipe(
      Effect.provide(Reactivity.layer)
    )
    yield* Effect.provideService(migrate(prefix), SqlClient.SqlClient, sql)
    const renewals = yield* Queue.unbounded<number>()
    const leases = Lease.make({
      connected: () => Effect.succeed(sql),
      query: (text, values) =>
        sql.unsafe(text, values).pipe(
          Effect.map((rows) => ({ rows })),
          Effect.tap(({ rows }) => Queue.offer(renewals, rows.length))
        ),
      hub: makeHub().hub,
      tables: t,
      holder: "this test",
      ttl: Duration.seconds(30),
      location: (key) => `postgres:${t.credentials}/${key}`,
      problem: String
    })
    return { sql, t, leases, renewals }
  })

/**
 * Another session (an administrator's, a stuck job) runs `lock` in a transaction it keeps open;
 * returns once it holds the rows, with the effect that lets them go (and waits for that).
 */
const holdingRow = (sql: SqlClient.SqlClient, lock: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const locked = yield* Deferred.make<void>()
    const letGo = yield* Deferred.make<void>()
    const other = yield* sql.withTransaction(Effect.gen(function*() {
      yield* lock
      yield* Deferred.succeed(locked, undefined)
      yield* Deferred.await(letGo)
    })).pipe(Effect.forkChild)
    yield* Deferred.await(locked)
    return Effect.andThen(Deferred.succeed(letGo, undefined), Fiber.join(other))
  })

/** Terminates every session of the replicas (their pools and listeners); returns how many. */
const terminateSessions = Effect.gen(function*() {
  const sql = yield* PgClient.make({ url: Redacted.make(cluster.url()), maxConnections: 1 }).pipe(
    Effect.provide(Reactivity.layer)
  )
  const rows = yield* sql<{ readonly killed: number }>`SELECT count(*)::int AS killed FROM (
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'effect-auth-manager%'
  ) AS terminated`
  return rows[0]?.killed ?? 0
}).pipe(Effect.scoped)

describe("PgStore refresh lock (Effect 4)", () => {
  it.live("one holder at a time: the other replica waits, and the release wakes it", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix("lease_one")
      const a = yield* replica(prefix)
      const b = yield* replica(prefix)
      const key = "user"
      const events = yield* Ref.make<ReadonlyArray<string>>([])
      const record = (event: string) => Ref.update(events, (all) => [...all, event])
      const aHolds = yield* Deferred.make<void>()
      const bWaits = yield* Deferred.make<void>()

      const first = yield* a.coordinator.withRefreshLock(key)(
        record("a in").pipe(
          Effect.andThen(Deferred.succeed(aHolds, undefined)),
          // Holds the lock until the other replica has found it taken.
          Effect.andThen(Deferred.await(bWaits).pipe(Effect.timeout("10 seconds"))),
          Effect.andThen(record("a out"))
        )
      ).pipe(Effect.forkChild)
      yield* Deferred.await(aHolds)

      const second = yield* b.coordinator.withRefreshLock(key)(record("b in")).pipe(
        Effect.provide(hearing("Waiting for the refresh lock", bWaits)),
        Effect.provideService(References.MinimumLogLevel, "Debug"),
        Effect.forkChild
      )
      yield* Fiber.join(first)
      // The lease lasts 35 s: getting it well before then means the release's NOTIFY woke the waiter.
      yield* Fiber.join(second).pipe(Effect.timeout("10 seconds"))
      assert.deepStrictEqual(yield* Ref.get(events), ["a in", "a out", "b in"])
    }))

  it.live("a replica whose lease was taken over does not write, and later saves only against what it read", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix("lease_lost")
      const a = yield* replica(prefix)
      const b = yield* replica(prefix)
      const key = "user"
      yield* a.store.set(key, Option.some(apiKeyDoc("sk-before")))
      const [aRead, bHolds, aTried, bDone] = yield* Effect.all([
        Deferred.make<void>(),
        Deferred.make<void>(),
        Deferred.make<void>(),
        Deferred.make<void>()
      ])
      const bounded = (step: Deferred.Deferred<void>) => Deferred.await(step).pipe(Effect.timeout("10 seconds"))

      // Replica A refreshes, and is cut off for longer than its lease before it saves.
      const refreshByA = yield* a.coordinator.withRefreshLock(key)(Effect.gen(function*() {
        const readByA = yield* a.store.get(key)
        yield* Deferred.succeed(aRead, undefined)
        yield* bounded(bHolds)
        // B holds the lease now, and has not written yet: A's save is refused by the fence alone.
        const lost = yield* Effect.exit(a.store.compareAndSet(key, readByA, Option.some(apiKeyDoc("sk-by-a"))))
        yield* Deferred.succeed(aTried, undefined)
        assert.isTrue(Exit.isFailure(lost))
        const error = Exit.isFailure(lost) ? Option.getOrUndefined(Exit.findErrorOption(lost)) : undefined
        assert.strictEqual(error?._tag, "AuthStoreError")
        assert.include(error?.problem, "lost the refresh lock")
        // Tried again once B let go, under a lease of its own: B's write is what it finds.
        yield* bounded(bDone)
        return yield* a.store.compareAndSet(key, readByA, Option.some(apiKeyDoc("sk-by-a")))
      })).pipe(Effect.forkChild)

      yield* bounded(aRead)
      yield* expireLeases(prefix)
      const byB = yield* b.coordinator.withRefreshLock(key)(Effect.gen(function*() {
        const readByB = yield* b.store.get(key)
        yield* Deferred.succeed(bHolds, undefined)
        yield* bounded(aTried)
        return yield* b.store.compareAndSet(key, readByB, Option.some(apiKeyDoc("sk-by-b")))
      }))
      assert.strictEqual(byB._tag, "Written")
      yield* Deferred.succeed(bDone, undefined)
      const later = yield* Fiber.join(refreshByA)
      assert.strictEqual(later._tag, "Conflict")

      const stored = yield* a.store.get(key)
      assert.strictEqual(byB._tag === "Written" ? byB.stored.revision : "", stored.revision)
      assert.strictEqual(Redacted.value(Option.getOrThrow(stored.snapshot.document).OPENAI_API_KEY!), "sk-by-b")
    }))

  it.live("the shared health lands only on the snapshot it is about, and new credentials clear it", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix("health")
      const a = yield* replica(prefix)
      const b = yield* replica(prefix)
      const key = "user"
      const before = yield* a.store.set(key, Option.some(apiKeyDoc("sk-old")))
      const poisoned = (hash: string): SharedHealth => ({ hash, state: "poisoned", reason: "reused", at: 1 })

      yield* a.coordinator.setHealth(key, Option.some(poisoned(before.snapshot.hash)))
      assert.deepStrictEqual(yield* b.coordinator.getHealth(key), Option.some(poisoned(before.snapshot.hash)))

      // Signing in again replaces the snapshot: the old one's health goes with it.
      const after = yield* b.store.set(key, Option.some(apiKeyDoc("sk-new")))
      assert.deepStrictEqual(yield* a.coordinator.getHealth(key), Option.none())
      // What was learned of the old snapshot, shared late, does not land on the new one.
      yield* a.coordinator.setHealth(key, Option.some(poisoned(before.snapshot.hash)))
      assert.deepStrictEqual(yield* b.coordinator.getHealth(key), Option.none())
      yield* a.coordinator.setHealth(key, Option.some(poisoned(after.snapshot.hash)))
      assert.deepStrictEqual(yield* b.coordinator.getHealth(key), Option.some(poisoned(after.snapshot.hash)))
      yield* b.coordinator.setHealth(key, Option.none())
      assert.deepStrictEqual(yield* a.coordinator.getHealth(key), Option.none())
    }))

  it.effect("a held lease is renewed at a third of its life; a renewal that finds it taken over marks it lost", () =>
    Effect.gen(function*() {
      const { leases, renewals, sql, t } = yield* leasesOf("renew")
      const expiresAt = Effect.map(
        sql<{ readonly at: number }>`SELECT extract(epoch FROM expires_at)::float8 AS at FROM ${sql(t.leases)}`,
        (rows) => rows[0]!.at
      )

      yield* Effect.scoped(Effect.gen(function*() {
        yield* leases.lock("user")
        const lease = Option.getOrThrow(yield* Effect.service(Lease.CurrentLease))
        const taken = yield* expiresAt
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* Queue.take(renewals), 1)
        assert.isAbove(yield* expiresAt, taken)
        assert.strictEqual(lease.state, "held")

        // Another replica takes the lease over (this holder was cut off): the next renewal finds it gone.
        yield* sql`UPDATE ${sql(t.leases)} SET fence = nextval(${t.versions}), holder = 'another replica'`
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* Queue.take(renewals), 0)
        assert.strictEqual(lease.state, "lost")
      }))
      // Its release leaves the other replica's lease alone.
      const [row] = yield* sql<{ readonly holder: string }>`SELECT holder FROM ${sql(t.leases)}`
      assert.strictEqual(row?.holder, "another replica")
    }))

  it.effect(
    "a renewal does not wait for a lease row another session has locked: the lease stays held",
    () =>
      Effect.gen(function*() {
        const { leases, renewals, sql, t } = yield* leasesOf("renew_locked")
        yield* Effect.scoped(Effect.gen(function*() {
          yield* leases.lock("user")
          const lease = Option.getOrThrow(yield* Effect.service(Lease.CurrentLease))
          // Another session holds the lease row, as this replica's own fenced write does while it waits
          // for a credential row someone else holds.
          const letGo = yield* holdingRow(
            sql,
            sql`SELECT 1 FROM ${sql(t.leases)} WHERE credential_key = 'user' FOR UPDATE`
          )
          yield* TestClock.adjust("10 seconds")
          // Answered at once, the lease still this replica's.
          assert.strictEqual(yield* Queue.take(renewals), 1)
          assert.strictEqual(lease.state, "held")
          // Not renewed then: tried again soon (a thirtieth of its life), not a third of its life later.
          yield* letGo
          yield* TestClock.adjust("1 second")
          assert.strictEqual(yield* Queue.take(renewals), 1)
          assert.strictEqual(lease.state, "held")
        }))
      }),
    { timeout: 20_000 }
  )

  it.effect(
    "taking a lease while another session holds the credential row: the wait can be interrupted",
    () =>
      Effect.gen(function*() {
        const { leases, sql, t } = yield* leasesOf("stuck")
        yield* sql`INSERT INTO ${sql(t.credentials)} (credential_key, document, hash, version)
        VALUES ('user', '{}', 'h', nextval(${t.versions}))`
        // Another session (an administrator's, a stuck job) holds the credential row: taking the lease
        // reads it with a lock, and its statement waits for as long as that session does.
        const letGo = yield* holdingRow(
          sql,
          sql`SELECT 1 FROM ${sql(t.credentials)} WHERE credential_key = 'user' FOR UPDATE`
        )
        // The replica shutting down meanwhile is not held by it (how long a statement is waited for,
        // and what becomes of one nobody waits for, is tested in Bounded.test.ts).
        const stopped = yield* Effect.forkChild(Effect.scoped(leases.lock("user")), { startImmediately: true })
        yield* Fiber.interrupt(stopped)
        yield* letGo
      }),
    { timeout: 20_000 }
  )

  it.live("sessions lost while a replica holds the lock: the lease outlives them, reads go on, the listener comes back", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix("sessions")
      const a = yield* replica(prefix)
      const b = yield* replica(prefix)
      const key = "user"
      const stored = yield* a.store.set(key, Option.some(apiKeyDoc("sk-user")))
      const bWaits = yield* Deferred.make<void>()
      const bHeld = yield* Ref.make(false)

      const second = yield* a.coordinator.withRefreshLock(key)(Effect.gen(function*() {
        const heard = yield* a.store.changes(key).pipe(Stream.runHead, Effect.forkChild({ startImmediately: true }))
        // Both replicas' pools and listeners: at least one session each.
        assert.isAtLeast(yield* terminateSessions, 4)
        // Reconnected, the listener says "changed" for every key: what was sent meanwhile is lost.
        yield* Fiber.join(heard).pipe(Effect.timeout("10 seconds"))
        assert.strictEqual((yield* a.store.get(key)).revision, stored.revision)
        // The lease is a row, not a session: the other replica still finds it held.
        const second = yield* b.coordinator.withRefreshLock(key)(Ref.set(bHeld, true)).pipe(
          Effect.provide(hearing("Waiting for the refresh lock", bWaits)),
          Effect.provideService(References.MinimumLogLevel, "Debug"),
          Effect.forkChild
        )
        yield* Deferred.await(bWaits).pipe(Effect.timeout("10 seconds"))
        assert.isFalse(yield* Ref.get(bHeld))
        return second
      }))
      yield* Fiber.join(second).pipe(Effect.timeout("10 seconds"))
      assert.isTrue(yield* Ref.get(bHeld))
    }))
})
