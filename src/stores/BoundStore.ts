/**
 * One credential of the keyed services, seen as the single-credential
 * `AuthStore` the manager works on: what the keyed manager gives each
 * manager, and what the PostgreSQL programs use for their one credential.
 */
import { Effect, Option } from "effect"
import type { AuthStoreShape, SetResult } from "./AuthStore.js"
import type { AuthStoreError } from "../errors/Errors.js"
import type { CredentialStoreShape } from "./CredentialStore.js"
import type { RefreshCoordinatorShape } from "./RefreshCoordinator.js"

export const bind = (
  key: string,
  credentials: CredentialStoreShape,
  coordinator: RefreshCoordinatorShape
): AuthStoreShape => ({
  location: credentials.location(key),
  load: Effect.map(credentials.get(key), (stored) => stored.snapshot),
  save: (doc) => Effect.map(credentials.set(key, Option.some(doc)), (stored) => stored.snapshot),
  // By hash, as the manager asks, made a compare-and-set by revision (version) against what was read.
  compareAndSet: (expected, next) =>
    Effect.flatMap(credentials.get(key), (stored): Effect.Effect<SetResult, AuthStoreError> =>
      stored.snapshot.hash !== expected
        ? Effect.succeed({ _tag: "Conflict", current: stored.snapshot })
        : Effect.map(credentials.compareAndSet(key, stored, next), (result): SetResult =>
          result._tag === "Written"
            ? { _tag: "Written", snapshot: result.stored.snapshot }
            : { _tag: "Conflict", current: result.current.snapshot })),
  remove: Effect.asVoid(credentials.set(key, Option.none())),
  changed: credentials.changes(key),
  withRefreshLock: coordinator.withRefreshLock(key),
  loadShared: coordinator.getHealth(key),
  saveShared: (state) => coordinator.setHealth(key, state)
})
