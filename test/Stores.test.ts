// One contract, every backend: memory, and PostgreSQL on the suite's throwaway cluster.
import { Effect, Layer, Option, Redacted } from "effect"
import * as CredentialStore from "../src/CredentialStore.js"
import * as PgStore from "../src/postgres/PgStore.js"
import * as RefreshCoordinator from "../src/RefreshCoordinator.js"
import { freshDatabase, query } from "./support/database.js"
import { storeContract } from "./support/storeContract.js"

storeContract({
  name: "memory",
  keys: ["default", "other"],
  hearsOthers: true,
  layer: async () => {
    // Two stores over one memory backend: what two managers of one process share.
    const backend = await Effect.runPromise(CredentialStore.makeMemoryBackend())
    const coordinator = await Effect.runPromise(RefreshCoordinator.makeMemory)
    const layer = Layer.mergeAll(
      Layer.succeed(CredentialStore.CredentialStore, CredentialStore.make(backend)),
      Layer.succeed(RefreshCoordinator.RefreshCoordinator, coordinator)
    )
    return {
      first: layer,
      second: layer,
      writeRaw: (key, text) =>
        Effect.runPromise(Effect.asVoid(backend.swap(key, Option.none(), Option.some({ text, hash: "raw" }))))
    }
  }
})

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
