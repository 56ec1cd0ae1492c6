/**
 * Credential storage keyed by a credential key: read a credential, write it
 * only if it still holds what was read (compare-and-set), and hear when
 * someone else changed it. The backends (memory here, the `auth.json` file,
 * PostgreSQL in `effect-auth-manager/postgres`) only store text under a key
 * with a revision; `make` adds the parsing, so every backend reads and
 * rejects a document exactly as the file store does.
 */
import { Context, Effect, Either, Layer, Option, PubSub, Stream } from "effect"
import * as AuthDocument from "../document/AuthDocument.js"
import { AuthStoreError } from "../errors/Errors.js"

/** The credential of a program that holds one (the Codex case): `EFFECT_AUTH_CREDENTIAL_KEY`'s default. */
export const defaultKey = "default"

/** What a backend holds under a key: the exact text of the document and its revision. */
export interface Entry {
  readonly text: string
  /**
   * Changes on every write: a version number (PostgreSQL, memory) or a hash
   * of the text (a file, which has no version). Opaque to everyone else.
   */
  readonly revision: string
}

/** A document to write: its text, and its snapshot hash (a backend may keep it beside the text). */
export interface Write {
  readonly text: string
  readonly hash: string
}

/** The revision of a key that holds nothing. */
export const absentRevision = "absent"

/** The few operations a backend implements; `make` builds the service from them. */
export interface Backend {
  /** Where a key's credential lives, for messages (a path, `postgres:…`): never a secret. */
  readonly location: (key: string) => string
  readonly read: (key: string) => Effect.Effect<Option.Option<Entry>, AuthStoreError>
  /**
   * Reads many keys at once (one statement, say), in their order; when absent, `read` is used
   * for each. A holder of many keys reads the keys changed elsewhere so.
   */
  readonly readMany?:
    | ((keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Option.Option<Entry>>, AuthStoreError>)
    | undefined
  /**
   * Writes `next` (none removes) if the key still holds `expected` (or any
   * revision when `expected` is none), atomically with the check. Right: the
   * entry written (none after a removal); Left: what the key holds instead.
   */
  readonly swap: (
    key: string,
    expected: Option.Option<string>,
    next: Option.Option<Write>
  ) => Effect.Effect<Either.Either<Option.Option<Entry>, Option.Option<Entry>>, AuthStoreError>
  /**
   * Emits when the key may have been changed by someone else. Never fails:
   * a backend that cannot watch is silent.
   */
  readonly changes: (key: string) => Stream.Stream<void>
  /**
   * Whether `changes` emits once per write, as it commits (a database's notifications), rather
   * than in bursts around one (a file watched): the manager then reloads at once, with no debounce.
   */
  readonly exactChanges?: boolean | undefined
  /**
   * Every key's changes in one feed, when the backend can give it: a key that may have been
   * changed, or none when any may have (the feed was cut). A holder of many keys then watches them
   * all with one subscription instead of one per key.
   */
  readonly changedKeys?: Stream.Stream<Option.Option<string>> | undefined
}

/** One credential as read: its parsed snapshot and the revision a compare-and-set is made against. */
export interface Stored {
  readonly key: string
  readonly snapshot: AuthDocument.AuthSnapshot
  readonly revision: string
}

/** The outcome of a compare-and-set: written, or someone else wrote first (here is what they wrote). */
export type SetResult =
  | { readonly _tag: "Written"; readonly stored: Stored }
  | { readonly _tag: "Conflict"; readonly current: Stored }

export interface CredentialStoreShape {
  readonly location: (key: string) => string
  /** The credential under `key`; the `absent` snapshot when there is none. */
  readonly get: (key: string) => Effect.Effect<Stored, AuthStoreError>
  /**
   * The credentials under `keys`, in their order, read at once when the backend can (see
   * `Backend.readMany`): fails as a whole when the read does; a key whose text is not a document
   * is that key's error. Absent from a service not made by `make`.
   */
  readonly getMany?:
    | ((
      keys: ReadonlyArray<string>
    ) => Effect.Effect<ReadonlyArray<Either.Either<Stored, AuthStoreError>>, AuthStoreError>)
    | undefined
  /** Writes `next` (none: signs out) only if `key` still holds the revision of `expected`. */
  readonly compareAndSet: (
    key: string,
    expected: Stored,
    next: Option.Option<AuthDocument.AuthDocument>
  ) => Effect.Effect<SetResult, AuthStoreError>
  /** Writes `next` (none: signs out) whatever `key` holds: a sign-in, a sign-out. */
  readonly set: (key: string, next: Option.Option<AuthDocument.AuthDocument>) => Effect.Effect<Stored, AuthStoreError>
  /** Emits when `key` may have been changed by someone else. Never fails. */
  readonly changes: (key: string) => Stream.Stream<void>
  /** Whether `changes` emits once per write (see `Backend.exactChanges`). */
  readonly exactChanges?: boolean | undefined
  /** Every key's changes in one feed, when the backend can give it (see `Backend.changedKeys`). */
  readonly changedKeys?: Stream.Stream<Option.Option<string>> | undefined
}

/**
 * Credentials, keyed by a credential key.
 *
 * @example
 * const stored = Effect.flatMap(CredentialStore, (store) => store.get("default"))
 */
export class CredentialStore extends Context.Tag("effect-auth-manager/CredentialStore")<
  CredentialStore,
  CredentialStoreShape
>() {
  /** The credential key of a single-credential program. */
  static readonly defaultKey = defaultKey
  /** The revision of a credential that does not exist. */
  static readonly absentRevision = absentRevision
  /** The store over a backend's few primitives: see `make`. */
  static readonly make = (backend: Backend): CredentialStoreShape => make(backend)
  /** A backend in memory, to build a store from or to test a backend's contract against. */
  static readonly makeMemoryBackend = (initial?: Readonly<Record<string, string | object>>) =>
    makeMemoryBackend(initial)
  /** A store in memory, built in place. */
  static readonly makeMemory = (initial?: Readonly<Record<string, string | object>>) => makeMemory(initial)
  /** Every credential in memory: for tests, and for programs that keep nothing. */
  static readonly layerMemory = (initial?: Readonly<Record<string, string | object>>) =>
    Layer.effect(CredentialStore, Effect.map(makeMemoryBackend(initial), make))
}

/** The text a document is stored as: what the Codex CLI writes to `auth.json`. */
export const format = (doc: AuthDocument.AuthDocument): string => `${AuthDocument.toText(doc)}\n`

/** Parses what a backend holds under `key`; text that is not a document is a read error naming the location. */
export const decodeEntry = (location: string, key: string, entry: Option.Option<Entry>) =>
  Option.match(entry, {
    onNone: (): Effect.Effect<Stored, AuthStoreError> =>
      Effect.succeed({ key, snapshot: AuthDocument.absent, revision: absentRevision }),
    onSome: ({ revision, text }) =>
      Effect.map(snapshotOf(location)(Option.some(text)), (snapshot): Stored => ({ key, snapshot, revision }))
  })

const toWrite = (doc: AuthDocument.AuthDocument): Write => ({
  text: format(doc),
  hash: AuthDocument.snapshot(doc).hash
})

/** The snapshot of a stored text at `location`: no text is no credentials; bad text is a read error. */
export const snapshotOf = (location: string) => (text: Option.Option<string>) =>
  Option.match(text, {
    onNone: () => Effect.succeed(AuthDocument.absent),
    onSome: (content) =>
      Either.match(AuthDocument.parse(content), {
        onLeft: (error) =>
          Effect.fail(new AuthStoreError({ path: location, operation: "read", problem: error.detail })),
        onRight: Effect.succeed
      })
  })

/** How many keys' last credential a store remembers having parsed (see `make`). */
const recentLimit = 65_536

/** Builds the service from a backend's primitives. */
export const make = (backend: Backend): CredentialStoreShape => {
  // The credential last read or written under each key, while something still holds its snapshot
  // (a manager, a keyed manager's key): a read of the same revision (which changes on every write)
  // is not parsed again. A refresh reads its credential under the lock, having read it when it
  // started; a replica hears its own writes and reads them. Held weakly: a credential let go is not
  // kept by this memory (only its key and revision are, for at most `recentLimit` keys).
  const recent = new Map<string, { readonly revision: string; readonly snapshot: WeakRef<AuthDocument.AuthSnapshot> }>()
  const remember = (stored: Stored) => {
    recent.delete(stored.key)
    recent.set(stored.key, { revision: stored.revision, snapshot: new WeakRef(stored.snapshot) })
    if (recent.size > recentLimit) recent.delete(recent.keys().next().value!)
    return stored
  }
  const decode = (key: string, entry: Option.Option<Entry>): Effect.Effect<Stored, AuthStoreError> => {
    if (Option.isNone(entry)) return decodeEntry(backend.location(key), key, entry)
    const hit = recent.get(key)
    const snapshot = hit !== undefined && hit.revision === entry.value.revision ? hit.snapshot.deref() : undefined
    return snapshot !== undefined
      ? Effect.succeed({ key, snapshot, revision: entry.value.revision })
      : Effect.map(decodeEntry(backend.location(key), key, entry), remember)
  }
  // What was written is known without parsing it again (the hash is worked out from the document).
  const written =
    (key: string, doc: Option.Option<AuthDocument.AuthDocument>) => (entry: Option.Option<Entry>): Stored => {
      const stored: Stored = {
        key,
        snapshot: Option.match(doc, { onNone: () => AuthDocument.absent, onSome: AuthDocument.snapshot }),
        revision: Option.match(entry, { onNone: () => absentRevision, onSome: (e) => e.revision })
      }
      return Option.isSome(entry) ? remember(stored) : stored
    }
  const readMany = backend.readMany
  return {
    location: backend.location,
    getMany: (keys) =>
      (readMany === undefined
        ? Effect.forEach(
          keys,
          (key) => Effect.either(Effect.flatMap(backend.read(key), (entry) => decode(key, entry))),
          {
            concurrency: "unbounded"
          }
        )
        : Effect.flatMap(readMany(keys), (entries) =>
          entries.length === keys.length
            ? Effect.forEach(keys, (key, i) => Effect.either(decode(key, entries[i]!)))
            : Effect.dieMessage(`a read of ${keys.length} keys gave ${entries.length} entries`))).pipe(
          Effect.withSpan("CredentialStore.getMany", {
            attributes: { credentials: keys.length },
            captureStackTrace: false
          })
        ),
    get: (key) =>
      backend.read(key).pipe(
        Effect.flatMap((entry) => decode(key, entry)),
        Effect.withSpan("CredentialStore.get", { attributes: { credential: key }, captureStackTrace: false })
      ),
    compareAndSet: (key, expected, next) =>
      backend.swap(key, Option.some(expected.revision), Option.map(next, toWrite)).pipe(
        Effect.flatMap(Either.match({
          onRight: (entry) => Effect.succeed<SetResult>({ _tag: "Written", stored: written(key, next)(entry) }),
          onLeft: (current) => Effect.map(decode(key, current), (current): SetResult => ({ _tag: "Conflict", current }))
        })),
        Effect.withSpan("CredentialStore.compareAndSet", { attributes: { credential: key }, captureStackTrace: false })
      ),
    set: (key, next) =>
      backend.swap(key, Option.none(), Option.map(next, toWrite)).pipe(
        // Without an expected revision there is no conflict: both sides are what was written.
        Effect.map(Either.merge),
        Effect.map(written(key, next)),
        Effect.withSpan("CredentialStore.set", { attributes: { credential: key }, captureStackTrace: false })
      ),
    changes: backend.changes,
    exactChanges: backend.exactChanges,
    changedKeys: backend.changedKeys
  }
}

/**
 * The memory backend: text under a key with a version number, changes
 * published to this process (another store in the same process sees them).
 */
export const makeMemoryBackend = (initial: Readonly<Record<string, string | object>> = {}) =>
  Effect.gen(function*() {
    let version = 0
    // Changed in place, each change one step (a copy per write would cost a write of one key the
    // whole map: a keyed manager holds thousands).
    const entries = new Map<string, Entry>(
      Object.entries(initial).map(([key, value]) => [
        key,
        { text: typeof value === "string" ? value : JSON.stringify(value), revision: String(++version) }
      ])
    )
    const changed = yield* PubSub.unbounded<string>()
    const backend: Backend = {
      location: (key) => `memory:${key}`,
      read: (key) => Effect.sync(() => Option.fromNullable(entries.get(key))),
      swap: (key, expected, next) =>
        Effect.sync((): Either.Either<Option.Option<Entry>, Option.Option<Entry>> => {
          const current = Option.fromNullable(entries.get(key))
          const currentRevision = Option.match(current, { onNone: () => absentRevision, onSome: (e) => e.revision })
          if (Option.isSome(expected) && expected.value !== currentRevision) return Either.left(current)
          const entry = Option.map(next, ({ text }): Entry => ({ text, revision: String(++version) }))
          Option.match(entry, { onNone: () => entries.delete(key), onSome: (e) => entries.set(key, e) })
          return Either.right(entry)
        }).pipe(Effect.tap((result) => Either.isRight(result) ? PubSub.publish(changed, key) : Effect.void)),
      changes: (key) =>
        Stream.fromPubSub(changed).pipe(Stream.filter((changedKey) => changedKey === key), Stream.as(undefined)),
      changedKeys: Stream.map(Stream.fromPubSub(changed), Option.some)
    }
    return backend
  })

/** A memory store, seeded with the JSON text or values an `auth.json` would hold, by key. */
export const makeMemory = (initial?: Readonly<Record<string, string | object>>) =>
  Effect.map(makeMemoryBackend(initial), make)
