// The store contract (test/support/storeContract.ts) on PostgreSQL: the suite's throwaway cluster.
import { Redacted } from "effect"
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
