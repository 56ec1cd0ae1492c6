/**
 * Writes credentials straight into the PostgreSQL table, behind the replicas' backs, as another
 * replica would: one statement, a new version and one notification per key.
 */
import { Either } from "effect"
import * as AuthDocument from "../../src/document/AuthDocument.js"

export const putCredentials = async (
  query: (sql: string, params: ReadonlyArray<unknown>) => Promise<unknown>,
  entries: ReadonlyArray<readonly [key: string, json: Record<string, unknown>]>
): Promise<void> => {
  const rows = entries.map(([key, json]) => {
    const doc = Either.getOrThrow(AuthDocument.decode(json))
    return [key, `${AuthDocument.toText(doc)}\n`, AuthDocument.snapshot(doc).hash] as const
  })
  await query(
    `WITH written AS (
       INSERT INTO effect_auth_credentials (credential_key, document, hash, version)
       SELECT k, d, h, nextval('effect_auth_versions') FROM unnest($1::text[], $2::text[], $3::text[]) AS t(k, d, h)
       ON CONFLICT (credential_key) DO UPDATE SET document = excluded.document, hash = excluded.hash,
         version = excluded.version, health = NULL, health_hash = NULL
       RETURNING credential_key
     ) SELECT pg_notify('effect_auth_changes', credential_key) FROM written`,
    [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2])]
  )
}
