// One contract, every backend: memory here; the auth.json file in test/Stores.file.test.ts; PostgreSQL in test/e2e/Stores.postgres.test.ts (a real cluster).
import { Effect, Layer, Option } from "effect"
import * as CredentialStore from "../src/stores/CredentialStore.js"
import * as RefreshCoordinator from "../src/stores/RefreshCoordinator.js"
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
