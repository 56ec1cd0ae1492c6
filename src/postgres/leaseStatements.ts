/**
 * The text of the lease statements (see `lease.ts`), fixed when a store starts, and the row a take
 * answers for each key.
 */
import { quoteIdentifier } from "./listener.js"

/** The tables and channels the statements name. */
export interface Tables {
  readonly leases: string
  readonly credentials: string
  readonly versions: string
  readonly leaseChannel: string
  readonly takenChannel: string
}

/** What a take answers for a key: its lease's fence if taken, else who holds it and for how long. */
export type Taken = {
  readonly credential_key: string
  readonly fence: string | null
  readonly holder: string | null
  readonly remaining: number | null
  readonly present: boolean | null
  readonly document: string | null
  readonly version: string | null
  readonly health: string | null
}

/**
 * The statements on the leases, each for many keys at once (see `batch.ts`); their text is fixed
 * when the store starts. Each locks the lease rows in the order of their keys, before any
 * credential row, as every statement on several keys does: two replicas (or a take and a
 * renewal) locking the same keys never wait for each other in a circle.
 */
export const statementsOf = (tables: Tables) => {
  const leases = quoteIdentifier(tables.leases)
  const credentials = quoteIdentifier(tables.credentials)
  return {
    // Takes each lease that is free or expired, and then reads the credential rows of the keys
    // taken; for the others says who holds the lease and for how long. (The outer SELECT sees the
    // leases as they were before the INSERT: only read for the keys not taken.) The rows are read
    // with a lock, after every lease is taken (the array is made first): if the previous holder's
    // write committed while this statement waited for its lease, the locking read returns that
    // write, not the row as it was when the statement began. Each lease taken is said on the taken
    // channel as the statement commits: the other replicas start no refresh of its key while it is
    // held (`Hub.heldElsewhere`; older replicas do not listen there).
    take: `WITH taken AS (
        INSERT INTO ${leases} (credential_key, fence, holder, expires_at)
        SELECT k, nextval($2), $3, clock_timestamp() + $4 * interval '1 millisecond'
        FROM unnest($1::text[]) AS k ORDER BY k
        ON CONFLICT (credential_key) DO UPDATE
          SET fence = excluded.fence, holder = excluded.holder, expires_at = excluded.expires_at
        WHERE ${leases}.expires_at <= clock_timestamp()
        RETURNING credential_key, fence
      ), credential AS (
        SELECT credential_key, document, version::text AS version, health FROM ${credentials}
        WHERE credential_key = ANY (ARRAY(SELECT credential_key FROM taken)) FOR SHARE
      ), said AS (
        SELECT count(pg_notify($5, credential_key)) AS n FROM taken
      ) SELECT k AS credential_key, t.fence::text AS fence, l.holder,
          greatest(0, extract(epoch FROM l.expires_at - clock_timestamp()) * 1000)::float8 AS remaining,
          c.credential_key IS NOT NULL AS present, c.document, c.version, c.health
        FROM unnest($1::text[]) AS k
        LEFT JOIN taken AS t ON t.credential_key = k
        LEFT JOIN credential AS c ON c.credential_key = k
        LEFT JOIN ${leases} AS l ON l.credential_key = k
        CROSS JOIN said`,
    // Releases the leases still held by their fences, and says so on the lease channel.
    release: `WITH released AS (
        DELETE FROM ${leases} AS l USING (
          SELECT l.credential_key FROM ${leases} AS l
          JOIN unnest($1::text[], $2::bigint[]) AS r(credential_key, fence)
            ON l.credential_key = r.credential_key AND l.fence = r.fence
          ORDER BY l.credential_key FOR UPDATE OF l
        ) AS locked WHERE l.credential_key = locked.credential_key
        RETURNING l.credential_key
      ) SELECT pg_notify($3, credential_key) FROM released`,
    // Renews the leases still held by their fences. A lease row locked meanwhile (this replica's own
    // fenced write waiting for its credential row, another replica's take of a lease it finds
    // unexpired) is skipped rather than waited for, so that one such row never holds up the renewal
    // of the others; it is answered as still held (read without a lock), not renewed, and tried
    // again soon.
    renewal: `WITH held AS (
        SELECT credential_key, fence FROM unnest($2::text[], $3::bigint[]) AS h(credential_key, fence)
      ), locked AS (
        SELECT l.credential_key FROM ${leases} AS l
        JOIN held AS h ON l.credential_key = h.credential_key AND l.fence = h.fence
        ORDER BY l.credential_key FOR UPDATE OF l SKIP LOCKED
      ), renewed AS (
        UPDATE ${leases} AS l SET expires_at = clock_timestamp() + $1 * interval '1 millisecond'
        FROM locked WHERE l.credential_key = locked.credential_key
        RETURNING l.credential_key, l.fence::text AS fence
      ) SELECT credential_key, fence, true AS renewed FROM renewed
      UNION ALL
      SELECT l.credential_key, l.fence::text AS fence, false AS renewed FROM ${leases} AS l
        JOIN held AS h ON l.credential_key = h.credential_key AND l.fence = h.fence
        WHERE l.credential_key NOT IN (SELECT credential_key FROM renewed)`
  }
}

/** The row of a key the statement did not answer for. */
export const nothingTaken = (key: string): Taken => ({
  credential_key: key,
  fence: null,
  holder: null,
  remaining: null,
  present: null,
  document: null,
  version: null,
  health: null
})
