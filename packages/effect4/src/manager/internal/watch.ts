/**
 * The storage watch: another process changed the credentials, and they are adopted.
 */
import { Effect, type Scope, Stream } from "effect"
import type { Settings } from "../../config/Settings.js"
import type { AuthStoreError } from "../../errors/Errors.js"
import type { AuthStoreShape } from "../../stores/AuthStore.js"

/**
 * Adopts what storage holds (`reload`) after each change another process makes (a different hash
 * clears poison and cooldown), for as long as `scope` is open.
 */
export const start = (
  store: AuthStoreShape,
  reload: Effect.Effect<unknown, AuthStoreError>,
  settings: Settings,
  scope: Scope.Scope
) =>
  store.changed.pipe(
    Stream.debounce(settings.watchDebounce),
    // Nothing a reload meets (a bad file, a defect) may end the watch.
    Stream.runForEach(() =>
      reload.pipe(
        Effect.catchTag("AuthStoreError", (error) => Effect.logWarning(error.message)),
        Effect.catchDefect((defect) =>
          Effect.logWarning("Reloading the credentials failed; the watch goes on").pipe(
            Effect.annotateLogs({ problem: defect instanceof Error ? defect.name : "defect" })
          )
        )
      )
    ),
    // Started at once: it listens before the manager is handed out, so no change made from then
    // on is missed (a fiber's first step is otherwise taken on a later tick).
    Effect.forkIn(scope, { startImmediately: true })
  )
