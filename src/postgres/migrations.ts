/**
 * The schema of the PostgreSQL store, run by `@effect/sql`'s Migrator when a
 * store starts: one table of credentials keyed by credential key, and one of
 * the refresh leases.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { createHash } from "node:crypto"

export const tables = (prefix: string) => ({
  credentials: `${prefix}_credentials`,
  leases: `${prefix}_leases`,
  versions: `${prefix}_versions`,
  migrations: `${prefix}_migrations`,
  channel: `${prefix}_changes`,
  leaseChannel: `${prefix}_leases`,
  /** Each lease taken, said to the other replicas (they start no refresh of that key meanwhile). */
  takenChannel: `${prefix}_taken`
})

/**
 * A 64-bit advisory lock key for `name`, worked out here and sent as a
 * parameter: the name never becomes SQL text.
 */
export const advisoryKey = (name: string): string =>
  createHash("sha256").update(name).digest().readBigInt64BE(0).toString()

// No pg_dump of the schema: the store needs no FileSystem or CommandExecutor to start.
const run = Migrator.make({})

/** Creates or upgrades the schema; replicas starting at once take turns. */
export const migrate = (prefix: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = tables(prefix)
    const loader = Migrator.fromRecord({
      "1_credentials": Effect.gen(function*() {
        // Versions come from one sequence, never reused: a credential removed and written again
        // cannot come back with a version that a stale reader would take for the one it read.
        yield* sql`CREATE SEQUENCE ${sql(t.versions)}`
        yield* sql`CREATE TABLE ${sql(t.credentials)} (
          credential_key text PRIMARY KEY,
          document text NOT NULL,
          hash text NOT NULL,
          version bigint NOT NULL,
          health text,
          health_hash text,
          updated_at timestamptz NOT NULL DEFAULT now()
        )`
      }),
      // A refresh in flight, in a row rather than a session's lock: it outlives the connection
      // that took it, until it is released or expires. Its fence (from the versions sequence, never
      // reused) is checked when the refreshed tokens are written.
      "2_leases": sql`CREATE TABLE ${sql(t.leases)} (
        credential_key text PRIMARY KEY,
        fence bigint NOT NULL,
        holder text NOT NULL,
        expires_at timestamptz NOT NULL
      )`
    })
    // The migrator locks its own table; replicas starting at once on an empty database would race
    // to create that table, so it is created first under a transaction-scoped advisory lock.
    yield* sql.withTransaction(
      sql`SELECT pg_advisory_xact_lock(${advisoryKey(`${prefix}:migrations`)}::bigint)`.pipe(
        Effect.zipRight(sql`CREATE TABLE IF NOT EXISTS ${sql(t.migrations)} (
          migration_id integer primary key,
          created_at timestamp with time zone not null default now(),
          name text not null
        )`)
      )
    )
    return yield* run({ loader, table: t.migrations })
  })
