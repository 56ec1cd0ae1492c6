/**
 * The change feed of the file store: a poll stats the folder and the file every `pollInterval`, and
 * the folder is watched for sooner news; a new folder (deleted, moved, re-created) re-makes the
 * watch. A watch that cannot be made is said once; the poll goes on.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import { Duration, Effect, Option, Ref, Schedule, Stream, SubscriptionRef } from "effect"
import { describe } from "../FileRead.js"

export interface WatchOptions {
  readonly dir: string
  readonly file: string
  readonly pollInterval: Duration.Duration
}

/** Emits when `file` may have changed (its identity, time or size, or a watch event on its name). */
export const changes = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  { dir, file, pollInterval }: WatchOptions
): Stream.Stream<void> => {
  const fileName = path.basename(file)
  const fingerprint = Effect.gen(function*() {
    const identity = (info: FileSystem.File.Info) => `${info.dev}:${Option.getOrElse(info.ino, () => 0)}`
    const folder = yield* Effect.option(fs.stat(dir))
    const content = yield* Effect.option(fs.stat(file))
    return {
      folder: Option.map(folder, identity),
      content: Option.match(content, {
        onNone: () => "absent",
        onSome: (info) =>
          `${identity(info)}:${Option.match(info.mtime, { onNone: () => 0, onSome: (d) => d.getTime() })}:${info.size}`
      })
    }
  })
  const warned = Ref.unsafeMake(false)
  const watchFolder = fs.watch(dir).pipe(
    Stream.filter((event) => path.basename(event.path) === fileName),
    Stream.as(undefined),
    Stream.catchAll((error) =>
      Stream.execute(Effect.whenEffect(
        Effect.logWarning(
          `Cannot watch ${dir} for changes; changes by other programs are noticed within ${
            Duration.format(pollInterval)
          } instead. On Linux, raising fs.inotify.max_user_watches may help.`
        ).pipe(Effect.annotateLogs({ problem: describe(error) })),
        Effect.map(Ref.getAndSet(warned, true), (said) => !said)
      ))
    )
  )
  return Stream.unwrapScoped(Effect.gen(function*() {
    const folder = yield* SubscriptionRef.make(Option.none<string>())
    const polls = Stream.repeatEffectWithSchedule(fingerprint, Schedule.spaced(pollInterval)).pipe(
      Stream.tap(({ folder: identity }) => SubscriptionRef.set(folder, identity)),
      Stream.changesWith((a, b) => a.content === b.content),
      Stream.as(undefined)
    )
    const events = folder.changes.pipe(
      Stream.changesWith(Option.getEquivalence((a: string, b: string) => a === b)),
      Stream.flatMap(Option.match({ onNone: () => Stream.empty, onSome: () => watchFolder }), { switch: true })
    )
    return Stream.merge(polls, events)
  }))
}
