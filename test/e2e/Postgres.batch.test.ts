// The PostgreSQL store gathers concurrent calls of one kind into one statement (src/postgres/batch.ts):
// two stores ("replicas") on one database of the suite's throwaway cluster, many keys at once. The
// statements a store sends are counted from its SQL spans; what PostgreSQL did, from its rows and
// from a trigger that logs every lease taken.
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Fiber, Layer, Option, Redacted, Ref, Tracer } from "effect"
import * as AuthDocument from "../../src/document/AuthDocument.js"
import * as PgStore from "../../src/postgres/PgStore.js"
import { CredentialStore } from "../../src/stores/CredentialStore.js"
import { RefreshCoordinator } from "../../src/stores/RefreshCoordinator.js"
import { freshDatabase, query } from "../support/database.js"
import { chatgptJson } from "../support/fixtures.js"

const doc = (refreshToken: string) => Either.getOrThrow(AuthDocument.decode(chatgptJson({ refreshToken })))

const refreshTokenOf = (stored: { readonly snapshot: AuthDocument.AuthSnapshot }) =>
  Option.match(stored.snapshot.document, {
    onNone: () => "none",
    onSome: (document) =>
      Option.match(Option.fromNullable(document.tokens), {
        onNone: () => "none",
        onSome: (tokens) => Redacted.value(tokens.refresh_token)
      })
  })

/** A tracer that keeps the SQL statements' spans: what each store sent, counted by their text. */
const recording = Effect.map(Effect.tracer, (native) => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = native.span(name, parent, context, links, startTime, kind, options)
      if (name === "sql.execute") spans.push(span)
      return span
    },
    context: (f, fiber) => native.context(f, fiber)
  })
  const statements = (pattern: RegExp) =>
    spans.filter((span) => pattern.test(String(span.attributes.get("db.query.text")))).length
  return { tracer, statements }
})

const takes = /INSERT INTO "effect_auth_leases"/
const releases = /DELETE FROM "effect_auth_leases"/
const reads = /^\s*SELECT [^;]* FROM "effect_auth_credentials"/
const fencedWrites = /UPDATE "effect_auth_credentials"/

/** Resolves once `count` calls of it were made. */
const countdown = (count: number) =>
  Effect.map(
    Effect.zip(Ref.make(0), Deferred.make<void>()),
    ([seen, all]) => ({
      arrive: Effect.flatMap(
        Ref.updateAndGet(seen, (n) => n + 1),
        (n) => n === count ? Deferred.succeed(all, undefined) : Effect.void
      ),
      all: Deferred.await(all)
    })
  )

/** A store on `url`, as one replica has: its own pool and listener, room to hold many leases. */
const replica = (url: string) =>
  Effect.map(
    Layer.build(PgStore.layer({ url: Redacted.make(url), lockTimeout: "30 seconds", maxHeldLocks: 1_000 })),
    (context) => ({
      coordinator: Effect.runSync(Effect.provide(RefreshCoordinator, context)),
      store: Effect.runSync(Effect.provide(CredentialStore, context))
    })
  )

/** A fresh database with two replicas on it, and a log of every lease taken (key, fence, holder). */
const fleet = Effect.gen(function*() {
  const url = yield* Effect.promise(() => freshDatabase("batch"))
  const first = yield* replica(url)
  yield* Effect.promise(() =>
    query(
      url,
      `CREATE TABLE lease_log (credential_key text NOT NULL, fence bigint NOT NULL, holder text NOT NULL);
      CREATE FUNCTION log_lease() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO lease_log VALUES (NEW.credential_key, NEW.fence, NEW.holder); RETURN NULL; END $$;
      CREATE TRIGGER log_lease AFTER INSERT OR UPDATE OF fence ON effect_auth_leases
        FOR EACH ROW EXECUTE FUNCTION log_lease();`
    )
  )
  const second = yield* replica(url)
  return { url, replicas: [first, second] as const }
})

const sql = <Row = Record<string, unknown>>(url: string, text: string, values: Array<unknown> = []) =>
  Effect.promise(() => query<Row>(url, text, values))

describe("PostgreSQL statements for many keys at once", () => {
  it.scopedLive("200 keys locked at once by two replicas: few statements, each key leased once per turn", () =>
    Effect.gen(function*() {
      const { statements, tracer } = yield* recording
      yield* Effect.gen(function*() {
        const { replicas, url } = yield* fleet
        const keys = Array.from({ length: 200 }, (_, i) => `key-${i}`)
        const holding = new Set<string>()
        let overlaps = 0
        const turns: Array<string> = []
        yield* Effect.forEach(
          replicas.flatMap((replica, r) => keys.map((key) => ({ replica, r, key }))),
          ({ key, r, replica }) =>
            replica.coordinator.withRefreshLock(key)(Effect.gen(function*() {
              if (holding.has(key)) overlaps++
              holding.add(key)
              turns.push(`${r} ${key}`)
              // The other replica meanwhile tries (and waits for) this key.
              yield* replicas[1 - r]!.store.get(key)
              holding.delete(key)
            })),
          { concurrency: "unbounded", discard: true }
        )
        expect(overlaps).toBe(0)
        expect(turns.sort()).toEqual(replicas.flatMap((_, r) => keys.map((key) => `${r} ${key}`)).sort())
        // Each turn took its lease once: one fence per key and replica, no lease taken and left.
        const log = yield* sql<{ turns: string }>(
          url,
          "SELECT count(*)::text AS turns FROM lease_log GROUP BY credential_key, holder HAVING count(*) <> 1"
        )
        expect(log).toEqual([])
        const [taken] = yield* sql<{ n: string }>(url, "SELECT count(DISTINCT fence)::text AS n FROM lease_log")
        expect(Number(taken!.n)).toBe(2 * keys.length)
        expect(yield* sql(url, "SELECT * FROM effect_auth_leases")).toEqual([])
        // At least 400 takes (more for the keys found held) and 400 releases, in fewer than half as
        // many statements (one each before).
        expect(statements(takes)).toBeLessThan(keys.length)
        expect(statements(releases)).toBeLessThan(keys.length)
      }).pipe(Effect.withTracer(tracer))
    }))

  it.scopedLive("takes interrupted while their statements run leave no lease behind", () =>
    Effect.gen(function*() {
      const { replicas, url } = yield* fleet
      const keys = Array.from({ length: 100 }, (_, i) => `gone-${i}`)
      const started = yield* Ref.make(0)
      const all = yield* Deferred.make<void>()
      const fibers = yield* Effect.forEach(keys, (key) =>
        Effect.fork(
          replicas[0].coordinator.withRefreshLock(key)(
            Effect.zipRight(
              Effect.flatMap(
                Ref.updateAndGet(started, (n) => n + 1),
                (n) => n === 25 ? Deferred.succeed(all, undefined) : Effect.void
              ),
              Effect.never
            )
          )
        ))
      // A quarter holds its lease; the others are in statements or waiting for one.
      yield* Deferred.await(all)
      yield* Fiber.interruptAll(fibers)
      expect(yield* sql(url, "SELECT * FROM effect_auth_leases")).toEqual([])
      // Every lease taken was released: none is left for its expiry.
      const [row] = yield* sql<{ n: string }>(url, "SELECT count(*)::text AS n FROM lease_log")
      expect(Number(row!.n)).toBeGreaterThanOrEqual(25)
    }))

  it.scopedLive("reads of many keys at once, of credentials and of health: few statements, each its own row", () =>
    Effect.gen(function*() {
      const { statements, tracer } = yield* recording
      yield* Effect.gen(function*() {
        const { replicas } = yield* fleet
        const [writer, reader] = replicas
        const keys = Array.from({ length: 100 }, (_, i) => `read-${i}`)
        // Every other key holds a credential, every fourth one a health record too; the others are absent.
        yield* Effect.forEach(keys, (key, i) =>
          i % 2 === 1 ? Effect.void : Effect.gen(function*() {
            const written = yield* writer.store.set(key, Option.some(doc(`rt-${key}`)))
            if (i % 4 === 0) {
              const hash = written.snapshot.hash
              yield* writer.coordinator.setHealth(
                key,
                Option.some({ hash, state: "poisoned", reason: "reused", at: i })
              )
            }
          }), { concurrency: 8, discard: true })
        const before = statements(reads)
        const [stored, health] = yield* Effect.all([
          Effect.forEach(keys, (key) => reader.store.get(key), { concurrency: "unbounded" }),
          Effect.forEach(keys, (key) => reader.coordinator.getHealth(key), { concurrency: "unbounded" })
        ], { concurrency: "unbounded" })
        expect(stored.map(refreshTokenOf)).toEqual(keys.map((key, i) => i % 2 === 0 ? `rt-${key}` : "none"))
        expect(health.map((record) => Option.map(record, (r) => r.at))).toEqual(
          keys.map((_, i) => i % 4 === 0 ? Option.some(i) : Option.none())
        )
        // 200 reads, in far fewer statements (one each before).
        expect(statements(reads) - before).toBeLessThanOrEqual(keys.length / 2)
      }).pipe(Effect.withTracer(tracer))
    }))

  it.scopedLive("refreshed tokens of many keys saved at once: one statement; a lease taken over is not written over", () =>
    Effect.gen(function*() {
      const { statements, tracer } = yield* recording
      yield* Effect.gen(function*() {
        const { replicas, url } = yield* fleet
        const [one] = replicas
        const keys = Array.from({ length: 40 }, (_, i) => `save-${i}`)
        const lost = keys[17]!
        yield* Effect.forEach(keys, (key) => one.store.set(key, Option.some(doc(`rt-${key}`))), {
          concurrency: 8,
          discard: true
        })
        const holding = yield* countdown(keys.length)
        const go = yield* Deferred.make<void>()
        const saving = yield* Effect.fork(
          Effect.forEach(keys, (key) =>
            one.coordinator.withRefreshLock(key)(Effect.gen(function*() {
              const read = yield* one.store.get(key)
              yield* holding.arrive
              yield* Deferred.await(go)
              return yield* Effect.either(one.store.compareAndSet(key, read, Option.some(doc(`rt-${key}-next`))))
            })), { concurrency: "unbounded" })
        )
        // Every refresh holds its lease; then one lease expires and another replica takes it over.
        yield* holding.all
        yield* sql(
          url,
          `UPDATE effect_auth_leases SET fence = nextval('effect_auth_versions'), holder = 'another replica',
            expires_at = clock_timestamp() + interval '1 minute' WHERE credential_key = $1`,
          [lost]
        )
        const before = statements(fencedWrites)
        yield* Deferred.succeed(go, undefined)
        const saved = yield* Fiber.join(saving)
        saved.forEach((result, i) => {
          if (keys[i] === lost) {
            expect(Either.isLeft(result) && result.left.problem).toContain("lost the refresh lock before saving")
          } else expect(Either.isRight(result) && result.right._tag).toBe("Written")
        })
        const rows = yield* sql<{ credential_key: string; document: string }>(
          url,
          "SELECT credential_key, document FROM effect_auth_credentials ORDER BY credential_key"
        )
        expect(
          Object.fromEntries(rows.map((row) => [row.credential_key, JSON.parse(row.document).tokens.refresh_token]))
        )
          .toEqual(Object.fromEntries(keys.map((key) => [key, key === lost ? `rt-${key}` : `rt-${key}-next`])))
        // The leases written under were released by their writes; the one taken over is the other replica's.
        expect(yield* sql(url, "SELECT credential_key, holder FROM effect_auth_leases")).toEqual([
          { credential_key: lost, holder: "another replica" }
        ])
        // 40 writes, in fewer than half as many statements (one each before).
        expect(statements(fencedWrites) - before).toBeLessThan(keys.length / 2)
      }).pipe(Effect.withTracer(tracer))
    }))

  it.scopedLive("two replicas locking and saving the same keys in opposite orders: keys locked in order, no deadlock", () =>
    Effect.gen(function*() {
      const { replicas, url } = yield* fleet
      // The order in which each take statement (each transaction) goes through its keys.
      yield* sql(
        url,
        `CREATE SEQUENCE take_order;
        CREATE TABLE take_log (tx bigint NOT NULL, credential_key text NOT NULL, n bigint NOT NULL);
        CREATE FUNCTION log_take() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN INSERT INTO take_log VALUES (txid_current(), NEW.credential_key, nextval('take_order')); RETURN NEW; END $$;
        CREATE TRIGGER log_take BEFORE INSERT ON effect_auth_leases FOR EACH ROW EXECUTE FUNCTION log_take();`
      )
      const keys = Array.from({ length: 100 }, (_, i) => `both-${String(i).padStart(3, "0")}`)
      yield* Effect.forEach(keys, (key) => replicas[0].store.set(key, Option.some(doc(`rt-${key}`))), {
        concurrency: 8,
        discard: true
      })
      const orders = [keys, [...keys].reverse()]
      // Each replica refreshes every key, in its own order: a save under the lease, on what it read.
      const saved = yield* Effect.forEach(
        replicas,
        (replica, r) =>
          Effect.forEach(orders[r]!, (key) =>
            replica.coordinator.withRefreshLock(key)(Effect.gen(function*() {
              const read = yield* replica.store.get(key)
              return yield* replica.store.compareAndSet(key, read, Option.some(doc(`${refreshTokenOf(read)}-${r}`)))
            })), { concurrency: "unbounded" }),
        { concurrency: "unbounded" }
      )
      expect(saved.flat().every((result) => result._tag === "Written")).toBe(true)
      // Each key was saved by both, one after the other: each read what the other had saved.
      const rows = yield* sql<{ document: string }>(url, "SELECT document FROM effect_auth_credentials")
      const tokens = rows.map((row) => JSON.parse(row.document).tokens.refresh_token as string)
      expect(tokens.every((token) => /^rt-both-\d{3}-(0-1|1-0)$/.test(token))).toBe(true)
      expect(tokens).toHaveLength(keys.length)
      // Every take statement went through its keys in order (the reversed replica's too), so no two
      // wait for each other in a circle; some took many keys.
      const unordered = yield* sql(
        url,
        `SELECT tx FROM (SELECT tx, credential_key, lag(credential_key) OVER (PARTITION BY tx ORDER BY n) AS previous
          FROM take_log) AS steps WHERE previous >= credential_key`
      )
      expect(unordered).toEqual([])
      const [widest] = yield* sql<{ keys: number }>(
        url,
        "SELECT max(keys)::int AS keys FROM (SELECT count(*) AS keys FROM take_log GROUP BY tx) AS statements"
      )
      expect(widest!.keys).toBeGreaterThan(10)
    }))

  it.scopedLive("a statement that fails fails each of its callers, each with the error of its own key", () =>
    Effect.gen(function*() {
      const { replicas, url } = yield* fleet
      const [one] = replicas
      const keys = Array.from({ length: 30 }, (_, i) => `broken-${i}`)
      yield* sql(url, "ALTER TABLE effect_auth_credentials RENAME TO effect_auth_elsewhere")
      const [reads, locks] = yield* Effect.all([
        Effect.forEach(keys, (key) => Effect.flip(one.store.get(key)), { concurrency: "unbounded" }),
        Effect.forEach(keys, (key) => Effect.flip(one.coordinator.withRefreshLock(key)(Effect.void)), {
          concurrency: "unbounded"
        })
      ], { concurrency: "unbounded" })
      yield* sql(url, "ALTER TABLE effect_auth_elsewhere RENAME TO effect_auth_credentials")
      for (const [errors, operation] of [[reads, "read"], [locks, "lock"]] as const) {
        expect(errors.map((error) => error._tag)).toEqual(keys.map(() => "AuthStoreError"))
        expect(errors.map((error) => error.path)).toEqual(keys.map((key) => one.store.location(key)))
        expect(errors.every((error) => error.operation === operation)).toBe(true)
        expect(errors.every((error) => error.problem.includes("does not exist (SQLSTATE 42P01)"))).toBe(true)
      }
      // What failed took no lease; the store works again once the table is back.
      expect(yield* sql(url, "SELECT * FROM effect_auth_leases")).toEqual([])
      expect(refreshTokenOf(yield* one.store.set(keys[0]!, Option.some(doc("rt-back"))))).toBe("rt-back")
    }))
})
