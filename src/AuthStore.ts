/**
 * Where the credentials live: a Codex-compatible `auth.json` on disk, or a
 * string in memory for tests. Both parse through the same code, so a test on
 * the memory store sees the errors a user of the file store would.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type { PlatformError } from "@effect/platform/Error"
import { Config, type ConfigError, Context, Duration, Effect, Either, Layer, Option, Random, Ref, Schedule, Schema, Stream } from "effect"
import * as AuthDocument from "./AuthDocument.js"
import { AuthStoreError } from "./Errors.js"
import { withLockFile } from "./internal/lockFile.js"
import { type SharedState, SharedStateJson } from "./internal/sharedState.js"

export interface AuthStoreShape {
  /** Where the credentials are kept, for messages: a file path, or "memory". */
  readonly location: string
  /** The current snapshot; `AuthDocument.absent` when there is no credential file. */
  readonly load: Effect.Effect<AuthDocument.AuthSnapshot, AuthStoreError>
  /** Replaces the credentials atomically and returns the snapshot written. */
  readonly save: (doc: AuthDocument.AuthDocument) => Effect.Effect<AuthDocument.AuthSnapshot, AuthStoreError>
  /** Deletes the credentials; succeeds when there were none. */
  readonly remove: Effect.Effect<void, AuthStoreError>
  /**
   * Emits when the credentials may have been changed by someone else (another
   * process writing the file). Never fails: a store that cannot watch is silent.
   */
  readonly changed: Stream.Stream<void>
  /**
   * Runs `effect` holding the store's refresh lock, so that the processes
   * sharing the credentials refresh and write them one at a time.
   */
  readonly withRefreshLock: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | AuthStoreError, R>
  /** The refresh state other processes shared; none when there is none, or it cannot be read. */
  readonly loadShared: Effect.Effect<Option.Option<SharedState>>
  /** Shares the refresh state with other processes (none clears it). Best effort: never fails. */
  readonly saveShared: (state: Option.Option<SharedState>) => Effect.Effect<void>
}

/** `CODEX_HOME`, else `$HOME/.codex`. */
export const codexHomeConfig = (): Config.Config<string> =>
  Config.string("CODEX_HOME").pipe(
    Config.orElse(() => Config.string("HOME").pipe(Config.map((home) => `${home}/.codex`)))
  )

const fileName = "auth.json"

/** The snapshot of a store's content: no text is no credentials; bad text is a read error. */
const snapshotOf = (location: string) => (text: Option.Option<string>) =>
  Option.match(text, {
    onNone: () => Effect.succeed(AuthDocument.absent),
    onSome: (content) =>
      Either.match(AuthDocument.parse(content), {
        onLeft: (problem) => Effect.fail(new AuthStoreError({ path: location, operation: "read", problem })),
        onRight: Effect.succeed
      })
  })

const describe = (error: PlatformError): string =>
  error._tag === "SystemError" ? `${error.reason}${error.description ? ` (${error.description})` : ""}` : error.message

export interface FileOptions {
  readonly codexHome: string
  /** A refresh lock older than this is broken: the refresh timeout (default 30 s). */
  readonly lockStaleAfter?: Duration.Duration
}

/** The file store over `FileSystem`: atomic writes, 0600 file, 0700 folder, a lock file and a sidecar. */
export const makeFile = ({ codexHome, lockStaleAfter = Duration.seconds(30) }: FileOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.resolve(codexHome)
    const file = path.join(dir, fileName)
    const fail = (operation: AuthStoreError["operation"]) => (problem: string) =>
      new AuthStoreError({ path: file, operation, problem })

    const readText: Effect.Effect<Option.Option<string>, AuthStoreError> = fs.readFileString(file).pipe(
      Effect.map(Option.some),
      Effect.catchIf(
        (error) => error._tag === "SystemError" && error.reason === "NotFound",
        () => Effect.succeedNone
      ),
      Effect.mapError((error) => fail("read")(describe(error)))
    )

    const load = Effect.flatMap(readText, snapshotOf(file))

    // A file we cannot read is someone's data: keep it beside the new one.
    const setAsideIfUnreadable = readText.pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.void,
        onSome: (text) =>
          Either.isRight(AuthDocument.parse(text)) ? Effect.void : Effect.gen(function*() {
            const kept = `${file}.unreadable-${Date.now()}`
            yield* fs.rename(file, kept)
            yield* Effect.logWarning("auth.json could not be read, so it was kept aside before writing").pipe(
              Effect.annotateLogs({ kept })
            )
          })
      })),
      Effect.catchTag("AuthStoreError", () => Effect.void)
    )

    const ensureDir = Effect.gen(function*() {
      if (yield* fs.exists(dir)) return
      yield* fs.makeDirectory(dir, { recursive: true, mode: 0o700 })
      yield* fs.chmod(dir, 0o700)
    })

    const writeAtomically = (target: string, text: string) =>
      Effect.gen(function*() {
        const temporary = `${target}.${process.pid}.${yield* Random.nextIntBetween(0, 2 ** 31)}.tmp`
        yield* Effect.scoped(Effect.gen(function*() {
          const handle = yield* fs.open(temporary, { flag: "wx", mode: 0o600 })
          yield* handle.writeAll(new TextEncoder().encode(text))
          yield* handle.sync
        })).pipe(
          Effect.zipRight(fs.rename(temporary, target)),
          Effect.tapError(() => Effect.ignore(fs.remove(temporary)))
        )
      })

    const save = (doc: AuthDocument.AuthDocument) =>
      Effect.gen(function*() {
        const written = AuthDocument.snapshot(doc)
        yield* ensureDir.pipe(Effect.mapError((error) => fail("write")(describe(error))))
        yield* setAsideIfUnreadable.pipe(Effect.catchAll((error) => Effect.fail(fail("write")(describe(error)))))
        yield* writeAtomically(file, `${JSON.stringify(AuthDocument.toJson(doc), null, 2)}\n`).pipe(
          Effect.mapError((error) => fail("write")(describe(error)))
        )
        return written
      }).pipe(Effect.withSpan("AuthStore.save"))

    const remove = fs.remove(file).pipe(
      Effect.catchIf((error) => error._tag === "SystemError" && error.reason === "NotFound", () => Effect.void),
      Effect.mapError((error) => fail("remove")(describe(error))),
      Effect.withSpan("AuthStore.remove")
    )

    // Watching the folder sees the rename of an atomic write, which a watch on the file would miss.
    // The folder may not exist yet: try again every second until it does.
    const changed = fs.watch(dir).pipe(
      Stream.filter((event) => path.basename(event.path) === fileName),
      Stream.as(undefined),
      Stream.retry(Schedule.spaced("1 second")),
      Stream.catchAll(() => Stream.never)
    )

    const lockFile = `${file}.lock`
    const lock = withLockFile(
      fs,
      lockFile,
      { staleAfter: lockStaleAfter, waitAtMost: Duration.sum(lockStaleAfter, Duration.seconds(5)) },
      {
        onTimeout: () => fail("lock")(`another process has held ${lockFile} for too long`),
        onError: (error) => fail("lock")(describe(error))
      }
    )
    // The first sign-in on a machine creates the folder the lock lives in.
    const withRefreshLock = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      ensureDir.pipe(
        Effect.mapError((error) => fail("lock")(describe(error))),
        Effect.zipRight(lock(effect))
      )

    // An optimisation, never a reason to fail: a sidecar that cannot be read is ignored (and said once).
    const sidecar = path.join(dir, "auth-refresh-state.json")
    const warnedAboutSidecar = yield* Ref.make(false)
    const ignoreSidecar = (problem: string) =>
      Effect.whenEffect(
        Effect.logWarning("Ignoring the shared refresh state").pipe(Effect.annotateLogs({ sidecar, problem })),
        Ref.getAndSet(warnedAboutSidecar, true).pipe(Effect.map((warned) => !warned))
      ).pipe(Effect.as(Option.none<SharedState>()))
    const loadShared = fs.readFileString(sidecar).pipe(
      Effect.flatMap((text) =>
        Either.match(Schema.decodeEither(SharedStateJson)(text), {
          onLeft: () => ignoreSidecar("unexpected content"),
          onRight: (state) => Effect.succeed(Option.some(state))
        })
      ),
      Effect.catchAll((error) =>
        error._tag === "SystemError" && error.reason === "NotFound" ? Effect.succeedNone : ignoreSidecar(describe(error))
      )
    )
    const saveShared = (state: Option.Option<SharedState>) =>
      Option.match(state, {
        onNone: () => fs.remove(sidecar),
        onSome: (shared) => writeAtomically(sidecar, `${Schema.encodeSync(SharedStateJson)(shared)}\n`)
      }).pipe(
        Effect.catchAll((error) =>
          error._tag === "SystemError" && error.reason === "NotFound"
            ? Effect.void
            : Effect.logWarning("Could not share the refresh state").pipe(Effect.annotateLogs({ problem: describe(error) }))
        )
      )

    return AuthStore.of({
      location: file,
      load: load.pipe(Effect.withSpan("AuthStore.load")),
      save,
      remove,
      changed,
      withRefreshLock,
      loadShared,
      saveShared
    })
  })

/** The memory store: the same parsing as the file, without the file. */
export const makeMemory = (initial?: string | object) =>
  Effect.gen(function*() {
    const shared = yield* Ref.make(Option.none<SharedState>())
    const text = yield* Ref.make(
      initial === undefined ? Option.none<string>() : Option.some(typeof initial === "string" ? initial : JSON.stringify(initial))
    )
    return AuthStore.of({
      location: "memory",
      load: Effect.flatMap(Ref.get(text), snapshotOf("memory")),
      save: (doc) =>
        Ref.set(text, Option.some(JSON.stringify(AuthDocument.toJson(doc)))).pipe(
          Effect.as(AuthDocument.snapshot(doc))
        ),
      remove: Ref.set(text, Option.none()),
      changed: Stream.never,
      // One process: the manager's single flight is the lock.
      withRefreshLock: (effect) => effect,
      loadShared: Ref.get(shared),
      saveShared: (state) => Ref.set(shared, state)
    })
  })

/**
 * Storage for one user's credentials.
 *
 * @example
 * const program = Effect.flatMap(AuthStore, (store) => store.load)
 * Effect.runPromise(program.pipe(Effect.provide(AuthStore.layerMemory())))
 */
export class AuthStore extends Context.Tag("effect-auth-manager/AuthStore")<AuthStore, AuthStoreShape>() {
  /** The `auth.json` file under `$CODEX_HOME` (default `~/.codex`), read through `Config`. */
  static readonly layerFile: Layer.Layer<AuthStore, ConfigError.ConfigError, FileSystem.FileSystem | Path.Path> =
    Layer.effect(
      AuthStore,
      Effect.flatMap(
        Config.all({
          codexHome: codexHomeConfig(),
          lockStaleAfter: Config.duration("EFFECT_AUTH_REFRESH_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30)))
        }),
        makeFile
      )
    )

  /** The `auth.json` file in the given folder. */
  static readonly layerFileWith = (options: FileOptions) => Layer.effect(AuthStore, makeFile(options))

  /**
   * A store in memory, optionally seeded with the JSON text or value an
   * `auth.json` would hold (it is parsed exactly as the file would be).
   */
  static readonly layerMemory = (initial?: string | object) => Layer.effect(AuthStore, makeMemory(initial))
}
