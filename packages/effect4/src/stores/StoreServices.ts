/**
 * The two keyed services a storage backend provides together: its credentials and its refresh
 * coordination, as one layer.
 */
import { Context, Effect, Layer } from "effect"
import * as CredentialStoreModule from "./CredentialStore.js"
import { CredentialStore, type CredentialStoreShape } from "./CredentialStore.js"
import * as RefreshCoordinatorModule from "./RefreshCoordinator.js"
import { RefreshCoordinator, type RefreshCoordinatorShape } from "./RefreshCoordinator.js"

/** What a backend's `make` builds. */
export interface StoreServices {
  readonly credentials: CredentialStoreShape
  readonly coordinator: RefreshCoordinatorShape
}

/** Both services, from what `made` builds. */
export const layerOf = <E, R>(
  made: Effect.Effect<StoreServices, E, R>
): Layer.Layer<CredentialStore | RefreshCoordinator, E, R> =>
  Layer.effectContext(
    Effect.map(made, ({ coordinator, credentials }) =>
      Context.make(CredentialStore, credentials).pipe(Context.add(RefreshCoordinator, coordinator)))
  )

/** Both services over a backend's primitives (what its `make` returns holds the two backends). */
export const fromBackends = (backends: {
  readonly credentials: CredentialStoreModule.Backend
  readonly coordinator: RefreshCoordinatorModule.Backend
}): StoreServices => ({
  credentials: CredentialStoreModule.make(backends.credentials),
  coordinator: RefreshCoordinatorModule.make(backends.coordinator)
})
