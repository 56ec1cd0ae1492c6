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
const reads = /^\s*SELECT [^;]* FROM "effect_auth_credentials"/

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
        // At least 400 takes (more for the keys found held), in far fewer statements (one each before).
        expect(statements(takes)).toBeLessThanOrEqual(keys.length / 4)
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
        // 200 reads (one each before).
        expect(statements(reads) - before).toBeLessThanOrEqual(keys.length / 2)
      }).pipe(Effect.withTracer(tracer))
    }))
})
