/**
 * Where the credentials live: a Codex-compatible `auth.json` on disk, or a
 * string in memory for tests. Both parse through the same code, so a test on
 * the memory store sees the errors a user of the file store would.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Context, Effect, Layer, Option, Stream } from "effect"
import * as Configuration from "../config/Configuration.js"
import * as AuthDocument from "../document/AuthDocument.js"
import { AuthStoreError } from "../errors/Errors.js"
import * as CredentialStore from "./CredentialStore.js"
import { type FileOptions, fileOptionsOf } from "./FileOptions.js"
import * as FileBackend from "./internal/fileStore.js"
import * as PendingFile from "./internal/pendingRefresh.js"
import * as RefreshCoordinator from "./RefreshCoordinator.js"
import type { SharedHealth } from "./RefreshCoordinator.js"

export interface AuthStoreShape {
  /** Where the credentials are kept, for messages: a file path, or `memory:<key>`. */
  readonly location: string
  /** The current snapshot; `AuthDocument.absent` when there is no credential file. */
  readonly load: Effect.Effect<AuthDocument.AuthSnapshot, AuthStoreError>
  /** Replaces the credentials atomically, whatever they were (a sign-in), and returns the snapshot written. */
  readonly save: (doc: AuthDocument.AuthDocument) => Effect.Effect<AuthDocument.AuthSnapshot, AuthStoreError>
  /**
   * Writes `next` (none: deletes) only if the store still holds the snapshot
   * with hash `expected`, atomically with the check (compare-and-swap);
   * otherwise answers what it holds instead.
   */
  readonly compareAndSet: (
    expected: string,
    next: Option.Option<AuthDocument.AuthDocument>
  ) => Effect.Effect<SetResult, AuthStoreError>
  /** Deletes the credentials; succeeds when there were none. */
  readonly remove: Effect.Effect<void, AuthStoreError>
  /**
   * Emits when the credentials may have been changed by someone else (another
   * process writing the file). Never fails: a store that cannot watch is silent.
   */
  readonly changed: Stream.Stream<void>
  /** Whether `changed` emits once per write, as it commits: reloaded at once, with no debounce. */
  readonly exactChanges?: boolean | undefined
  /**
   * Runs `effect` holding the store's refresh lock, so that the processes
   * sharing the credentials refresh one at a time. It may be held across a
   * token request; writes take the store's own short lock inside it.
   */
  readonly withRefreshLock: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | AuthStoreError, R>
  /** The refresh state other processes shared; none when there is none, or it cannot be read. */
  readonly loadShared: Effect.Effect<Option.Option<SharedHealth>>
  /** Shares the refresh state with other processes (none clears it). Best effort: never fails. */
  readonly saveShared: (state: Option.Option<SharedHealth>) => Effect.Effect<void>
  /**
   * Keeps a refresh whose tokens could not be written (another program held the credentials' lock
   * as this one stopped) where the next start on the same store finds it; none removes it. Written
   * without the credentials' lock, with their protection. Only stores with such a place have it
   * (the file store: a 0600 file beside `auth.json`).
   */
  readonly keepPending?: (pending: Option.Option<AuthDocument.PendingRefresh>) => Effect.Effect<void, AuthStoreError>
  /** The refresh `keepPending` kept; none when there is none or it cannot be read (said). */
  readonly loadPending?: Effect.Effect<Option.Option<AuthDocument.PendingRefresh>>
  /** Where `keepPending` keeps it, for messages. */
  readonly pendingLocation?: string
}

/** The outcome of a compare-and-set: written, or what the store holds instead. */
export type SetResult =
  | { readonly _tag: "Written"; readonly snapshot: AuthDocument.AuthSnapshot }
  | { readonly _tag: "Conflict"; readonly current: AuthDocument.AuthSnapshot }

/** The file store over `FileSystem`: see `layerFile`. */
export const makeFile = (
  options: FileOptions
): Effect.Effect<AuthStoreShape, never, FileSystem.FileSystem | Path.Path> =>
  // The keyed services over the file, bound to its one credential: one compare-and-set, one lock path.
  Effect.map(FileBackend.makeFiles(options), ({ coordinator, credentials, pending }): AuthStoreShape => ({
    ...bind(
      options.credentialKey ?? CredentialStore.defaultKey,
      CredentialStore.make(credentials),
      RefreshCoordinator.make(coordinator)
    ),
    ...PendingFile.operations(pending)
  }))

/**
 * The memory store: the keyed memory services bound to one key, with the
 * same parsing as the file, and the same compare-and-set as every backend.
 */
export const makeMemory = (initial?: string | object) =>
  Effect.map(
    Effect.all([
      CredentialStore.makeMemory(initial === undefined ? {} : { [CredentialStore.defaultKey]: initial }),
      RefreshCoordinator.makeMemory
    ]),
    ([credentials, coordinator]) => bind(CredentialStore.defaultKey, credentials, coordinator)
  )

/**
 * Storage for one user's credentials.
 *
 * @example
 * const program = Effect.flatMap(AuthStore, (store) => store.load)
 * Effect.runPromise(program.pipe(Effect.provide(AuthStore.layerMemory())))
 */
export class AuthStore extends Context.Tag("effect-auth-manager/AuthStore")<AuthStore, AuthStoreShape>() {
  /** The file store in the given folder, built in place: see `makeFile`. */
  static readonly makeFile = makeFile
  /** A memory store, built in place: see `makeMemory`. */
  static readonly makeMemory = makeMemory

  /**
   * The `auth.json` file in the `codexHome` of the `Configuration` in context
   * (`Configuration.layerConfig` reads `CODEX_HOME`; `Configuration.layer` sets it in code).
   */
  static readonly layerFile: Layer.Layer<
    AuthStore,
    never,
    Configuration.Configuration | FileSystem.FileSystem | Path.Path
  > = Layer.effect(
    AuthStore,
    Effect.flatMap(Configuration.Configuration, (configuration) => makeFile(fileOptionsOf(configuration)))
  )

  /**
   * A store in memory, optionally seeded with the JSON text or value an
   * `auth.json` would hold (it is parsed exactly as the file would be).
   */
  static readonly layerMemory = (initial?: string | object) => Layer.effect(AuthStore, makeMemory(initial))

  /**
   * The credential `key` of the keyed `CredentialStore` and `RefreshCoordinator`
   * in context (PostgreSQL, for instance), as this single-credential store.
   */
  static readonly layerKeyed = (
    key: string
  ): Layer.Layer<AuthStore, never, CredentialStore.CredentialStore | RefreshCoordinator.RefreshCoordinator> =>
    Layer.effect(
      AuthStore,
      Effect.map(
        Effect.all([CredentialStore.CredentialStore, RefreshCoordinator.RefreshCoordinator]),
        ([credentials, coordinator]) => bind(key, credentials, coordinator)
      )
    )
}

/**
 * One credential of the keyed services, seen as the single-credential store the
 * manager works on: what the keyed manager gives each manager, and what the
 * PostgreSQL programs use for their one credential.
 */
export const bind = (
  key: string,
  credentials: CredentialStore.CredentialStoreShape,
  coordinator: RefreshCoordinator.RefreshCoordinatorShape
): AuthStoreShape => {
  // What this store last read or wrote of the key: a compare-and-set against the snapshot read
  // just before (a refresh's, under the lock) takes its revision from here instead of reading it
  // again. The write is still checked against storage by revision.
  let last: CredentialStore.Stored | undefined
  const seen = (stored: CredentialStore.Stored) => {
    last = stored
    return stored
  }
  const read = Effect.map(Effect.suspend(() => credentials.get(key)), seen)
  // Against `stored` (its hash is the one expected): written, or what storage holds instead. A
  // revision remembered here that storage has since replaced with the same credentials is read
  // again and tried once more, as a read just before the write would have found it.
  const swap = (
    stored: CredentialStore.Stored,
    next: Option.Option<AuthDocument.AuthDocument>,
    remembered: boolean
  ): Effect.Effect<SetResult, AuthStoreError> =>
    Effect.flatMap(credentials.compareAndSet(key, stored, next), (result): Effect.Effect<SetResult, AuthStoreError> => {
      if (result._tag === "Written") return Effect.succeed({ _tag: "Written", snapshot: seen(result.stored).snapshot })
      seen(result.current)
      return remembered && result.current.snapshot.hash === stored.snapshot.hash
        ? swap(result.current, next, false)
        : Effect.succeed({ _tag: "Conflict", current: result.current.snapshot })
    })
  return {
    // Made when asked for: a keyed manager binds a key for each refresh that runs, which uses few of
    // them (a key's change feed, above all, is a stream of its own).
    get location() {
      return credentials.location(key)
    },
    get load() {
      return Effect.map(read, (stored) => stored.snapshot)
    },
    save: (doc) => Effect.map(credentials.set(key, Option.some(doc)), (stored) => seen(stored).snapshot),
    // By hash, as the manager asks, made a compare-and-set by revision (version) against what was read.
    compareAndSet: (expected, next) =>
      Effect.suspend(() => {
        const known = last
        if (known !== undefined && known.snapshot.hash === expected) return swap(known, next, true)
        return Effect.flatMap(
          read,
          (stored): Effect.Effect<SetResult, AuthStoreError> =>
            stored.snapshot.hash !== expected
              ? Effect.succeed({ _tag: "Conflict", current: stored.snapshot })
              : swap(stored, next, false)
        )
      }),
    get remove() {
      return Effect.asVoid(Effect.map(credentials.set(key, Option.none()), seen))
    },
    get changed() {
      return credentials.changes(key)
    },
    exactChanges: credentials.exactChanges,
    withRefreshLock: (effect) => coordinator.withRefreshLock(key)(effect),
    get loadShared() {
      return coordinator.getHealth(key)
    },
    saveShared: (state) => coordinator.setHealth(key, state)
  }
}
