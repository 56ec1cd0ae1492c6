/**
 * A debug line with annotations, on the refresh path. Annotating a line changes a fiber ref, which
 * costs as much as a few other steps of a refresh, even when the line is then dropped (debug lines
 * are not kept by default): the level is looked at first, as the runtime does when it logs.
 */
import { Effect, FiberRef, LogLevel } from "effect"

export const logDebugAnnotated = (
  message: string,
  annotations: Readonly<Record<string, unknown>>
): Effect.Effect<void> =>
  FiberRef.getWith(
    FiberRef.currentMinimumLogLevel,
    (minimum) =>
      LogLevel.greaterThan(minimum, LogLevel.Debug)
        ? Effect.void
        : Effect.annotateLogs(Effect.logDebug(message), annotations)
  )
