/**
 * What `import "effect-auth-manager/postgres"` loads: `./index.js`, once its
 * optional peers are known to be installed (else an error naming them).
 */
import { loadWithPeers, type Peer } from "@effect-auth-manager/core/peers"

/** The optional peers this entry point needs (the ranges of package.json's `peerDependencies`). */
export const peers: ReadonlyArray<Peer> = [
  { name: "@effect/sql", range: "^0.52.1" },
  { name: "@effect/sql-pg", range: "^0.53.0" },
  { name: "@effect/experimental", range: "^0.61.1" },
  { name: "pg", range: "^8.16.3" }
]

const postgres = await loadWithPeers("effect-auth-manager/postgres", peers, () => import("./index.js"))

export const PgStore: typeof postgres.PgStore = postgres.PgStore
