/**
 * What `import "@effect-auth-manager/effect4/postgres"` loads: `./index.js`, once its optional peer
 * is known to be installed (else an error naming it). The SQL modules are part of `effect` itself;
 * `@effect/sql-pg` speaks PostgreSQL's protocol without `pg`.
 */
import { loadWithPeers, type Peer } from "@effect-auth-manager/core/peers"

/** The optional peers this entry point needs (the ranges of package.json's `peerDependencies`). */
export const peers: ReadonlyArray<Peer> = [
  { name: "@effect/sql-pg", range: "^4.0.5" }
]

const postgres = await loadWithPeers("@effect-auth-manager/effect4/postgres", peers, () => import("./index.js"))

export const PgStore: typeof postgres.PgStore = postgres.PgStore
