// The store contract (test/support/storeContract.ts) on PostgreSQL: the suite's throwaway cluster.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted } from "effect"
import * as PgStore from "../../src/postgres/PgStore.js"
import { freshDatabase, query } from "../support/database.js"
import { storeContract } from "../support/storeContract.js"

storeContract({
  name: "PostgreSQL",
  keys: ["default", "customer-42"],
  hearsOthers: true,
  layer: async () => {
    const url = await freshDatabase("contract")
    // Two pools, two listeners: what two replicas have.
    const layer = () => PgStore.layer({ url: Redacted.make(url), lockTimeout: "5 seconds" })
    return {
      first: layer(),
      second: layer(),
      writeRaw: async (key, text) => {
        await query(
          url,
          `INSERT INTO effect_auth_credentials (credential_key, document, hash, version)
           VALUES ($1, $2, 'raw', nextval('effect_auth_versions'))
           ON CONFLICT (credential_key) DO UPDATE SET document = excluded.document, version = excluded.version`,
          [key, text]
        )
      }
    }
  }
})

describe("PgStore.layer", () => {
  it.effect("refuses a pool size that cannot work, saying what is allowed", () =>
    Effect.gen(function*() {
      for (const maxConnections of [0, 101, 2.5]) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(
          PgStore.layer({ url: Redacted.make("postgres://127.0.0.1:1/none"), maxConnections })
        )))
        expect(Exit.isFailure(exit) && String(exit.cause)).toContain("a whole number from 1 to 100")
      }
    }))
})
