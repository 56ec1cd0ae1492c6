/**
 * The storage watch: another process changed the credentials, and they are adopted.
 */
import { Effect, type Scope, Stream } from "effect"
import type { Settings } from "../../config/Settings.js"
import type { AuthStoreError } from "../../errors/Errors.js"
import type { AuthStoreShape } from "../../stores/AuthStore.js"

/**
 * Adopts what storage holds (`reload`) after each change another process makes (a different hash
 * clears poison and cooldown), for as long as `scope` is open. A store whose changes come once per
 * write (a database's notifications) is reloaded at once; a file's bursts of events are debounced.
 */
export const start = (
  store: AuthStoreShape,
  reload: Effect.Effect<unknown, AuthStoreError>,
  settings: Settings,
  scope: Scope.Scope
) =>
  (store.exactChanges === true ? store.changed : Stream.debounce(store.changed, settings.watchDebounce)).pipe(
    Stream.runForEach(() => reloadQuietly(reload)),
    Effect.forkIn(scope)
  )

/** `reload`, whose failures are said and absorbed: nothing a reload meets (a bad file, a defect) may end a watch. */
export const reloadQuietly = (reload: Effect.Effect<unknown, AuthStoreError>): Effect.Effect<void> =>
  reload.pipe(
    Effect.asVoid,
    Effect.catchTag("AuthStoreError", (error) => Effect.logWarning(error.message)),
    Effect.catchAllDefect((defect) =>
      Effect.logWarning("Reloading the credentials failed; the watch goes on").pipe(
        Effect.annotateLogs({ problem: defect instanceof Error ? defect.name : "defect" })
      )
    )
  )
