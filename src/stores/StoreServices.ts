/**
 * The two keyed services a storage backend provides together: its credentials and its refresh
 * coordination, as one layer.
 */
import { Context, Effect, Layer } from "effect"
import { CredentialStore, type CredentialStoreShape } from "./CredentialStore.js"
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
