/**
 * The change feed of the file store: a poll stats the folder and the file every `pollInterval`, and
 * the folder is watched for sooner news; a new folder (deleted, moved, re-created) re-makes the
 * watch. A watch that cannot be made is said once; the poll goes on.
 */
import { Duration, Effect, type FileSystem, Option, type Path, Ref, Schedule, Stream, SubscriptionRef } from "effect"
import { describe } from "./platformError.js"

export interface WatchOptions {
  readonly dir: string
  readonly file: string
  readonly pollInterval: Duration.Duration
}

/** Runs `effect` the first time only. */
export const once = (flag: Ref.Ref<boolean>, effect: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.flatMap(Ref.getAndSet(flag, true), (done) => done ? Effect.void : effect)

/** Emits when `file` may have changed (its identity, time or size, or a watch event on its name). */
export const changes = (
  fs: FileSystem.FileSystem,
  path: Path.Path,
  { dir, file, pollInterval }: WatchOptions
): Stream.Stream<void> => {
  const fileName = path.basename(file)
  const fingerprint = Effect.gen(function*() {
    const identity = (info: FileSystem.File.Info) => `${info.dev}:${Option.getOrElse(info.ino, () => 0n)}`
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
  const warned = Ref.makeUnsafe(false)
  const watchFolder = fs.watch(dir).pipe(
    Stream.filter((event) => path.basename(event.path) === fileName),
    Stream.as(undefined),
    Stream.catch((error) =>
      Stream.fromEffectDrain(once(
        warned,
        Effect.logWarning(
          `Cannot watch ${dir} for changes; changes by other programs are noticed within ${
            Duration.format(pollInterval)
          } instead. On Linux, raising fs.inotify.max_user_watches may help.`
        ).pipe(Effect.annotateLogs({ problem: describe(error) }))
      ))
    )
  )
  return Stream.unwrap(Effect.gen(function*() {
    const folder = yield* SubscriptionRef.make(Option.none<string>())
    const polls = Stream.fromEffectSchedule(fingerprint, Schedule.spaced(pollInterval)).pipe(
      Stream.tap(({ folder: identity }) => SubscriptionRef.set(folder, identity)),
      Stream.changesWith((a, b) => a.content === b.content),
      Stream.as(undefined)
    )
    const events = SubscriptionRef.changes(folder).pipe(
      Stream.changesWith(Option.makeEquivalence((a: string, b: string) => a === b)),
      Stream.switchMap(Option.match({ onNone: () => Stream.empty, onSome: () => watchFolder }))
    )
    return Stream.merge(polls, events)
  }))
}
