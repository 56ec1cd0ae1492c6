/**
 * Credential storage keyed by a credential key: read a credential, write it
 * only if it still holds what was read (compare-and-set), and hear when
 * someone else changed it. The backends (memory here, the `auth.json` file,
 * PostgreSQL in `effect-auth-manager/postgres`) only store text under a key
 * with a revision; `make` adds the parsing, so every backend reads and
 * rejects a document exactly as the file store does.
 */
import { Context, Effect, Layer, Option, PubSub, Result, Stream } from "effect"
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
   * Writes `next` (none removes) if the key still holds `expected` (or any
   * revision when `expected` is none), atomically with the check. Success:
   * the entry written (none after a removal); Failure: what the key holds instead.
   */
  readonly swap: (
    key: string,
    expected: Option.Option<string>,
    next: Option.Option<Write>
  ) => Effect.Effect<Result.Result<Option.Option<Entry>, Option.Option<Entry>>, AuthStoreError>
  /**
   * Emits when the key may have been changed by someone else. Never fails:
   * a backend that cannot watch is silent.
   */
  readonly changes: (key: string) => Stream.Stream<void>
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
}

/**
 * Credentials, keyed by a credential key.
 *
 * @example
 * const stored = Effect.flatMap(CredentialStore, (store) => store.get("default"))
 */
export class CredentialStore extends Context.Service<CredentialStore, CredentialStoreShape>()(
  "effect-auth-manager/CredentialStore"
) {
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
    Layer.effect(CredentialStore, makeMemory(initial))
}

/** The text a document is stored as: what the Codex CLI writes to `auth.json`. */
export const format = (doc: AuthDocument.AuthDocument): string => `${AuthDocument.toText(doc)}\n`

/** The snapshot of a stored text at `location`: no text is no credentials; bad text is a read error. */
export const snapshotOf = (location: string) => (text: Option.Option<string>) =>
  Option.match(text, {
    onNone: () => Effect.succeed(AuthDocument.absent),
    onSome: (content) =>
      Result.match(AuthDocument.parse(content), {
        onFailure: (error) =>
          Effect.fail(new AuthStoreError({ path: location, operation: "read", problem: error.detail })),
        onSuccess: (snapshot) => Effect.succeed(snapshot)
      })
  })

/** Parses what a backend holds under `key`; text that is not a document is a read error naming the location. */
export const decodeEntry = (
  location: string,
  key: string,
  entry: Option.Option<Entry>
): Effect.Effect<Stored, AuthStoreError> =>
  Option.match(entry, {
    onNone: () => Effect.succeed({ key, snapshot: AuthDocument.absent, revision: absentRevision }),
    onSome: ({ revision, text }) =>
      Effect.map(snapshotOf(location)(Option.some(text)), (snapshot): Stored => ({ key, snapshot, revision }))
  })

const toWrite = (doc: AuthDocument.AuthDocument): Write => ({
  text: format(doc),
  hash: AuthDocument.snapshot(doc).hash
})

/** Builds the service from a backend's primitives. */
export const make = (backend: Backend): CredentialStoreShape => {
  const decode = (key: string, entry: Option.Option<Entry>) => decodeEntry(backend.location(key), key, entry)
  // What was written is known without parsing it again (the hash is worked out from the document).
  const written =
    (key: string, doc: Option.Option<AuthDocument.AuthDocument>) => (entry: Option.Option<Entry>): Stored => ({
      key,
      snapshot: Option.match(doc, { onNone: () => AuthDocument.absent, onSome: AuthDocument.snapshot }),
      revision: Option.match(entry, { onNone: () => absentRevision, onSome: (e) => e.revision })
    })
  return {
    location: backend.location,
    get: Effect.fn("CredentialStore.get")(function*(key: string) {
      yield* Effect.annotateCurrentSpan("credential", key)
      return yield* decode(key, yield* backend.read(key))
    }),
    compareAndSet: Effect.fn("CredentialStore.compareAndSet")(
      function*(key: string, expected: Stored, next: Option.Option<AuthDocument.AuthDocument>) {
        yield* Effect.annotateCurrentSpan("credential", key)
        const result = yield* backend.swap(key, Option.some(expected.revision), Option.map(next, toWrite))
        if (Result.isSuccess(result)) return { _tag: "Written", stored: written(key, next)(result.success) } as const
        return { _tag: "Conflict", current: yield* decode(key, result.failure) } as const
      }
    ),
    set: Effect.fn("CredentialStore.set")(function*(key: string, next: Option.Option<AuthDocument.AuthDocument>) {
      yield* Effect.annotateCurrentSpan("credential", key)
      // Without an expected revision there is no conflict: both sides are what was written.
      return written(key, next)(Result.merge(yield* backend.swap(key, Option.none(), Option.map(next, toWrite))))
    }),
    changes: backend.changes
  }
}

type SwapOutcome = Result.Result<Option.Option<Entry>, Option.Option<Entry>>

/**
 * The memory backend: text under a key with a version number, changes
 * published to this process (another store over the same backend sees them).
 */
export const makeMemoryBackend = (initial: Readonly<Record<string, string | object>> = {}): Effect.Effect<Backend> =>
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
    const swap = (key: string, expected: Option.Option<string>, next: Option.Option<Write>) =>
      Effect.sync((): SwapOutcome => {
        const current = Option.fromNullishOr(entries.get(key))
        const currentRevision = Option.match(current, { onNone: () => absentRevision, onSome: (e) => e.revision })
        if (Option.isSome(expected) && expected.value !== currentRevision) return Result.fail(current)
        const entry = Option.map(next, ({ text }): Entry => ({ text, revision: String(++version) }))
        Option.match(entry, { onNone: () => entries.delete(key), onSome: (e) => entries.set(key, e) })
        return Result.succeed(entry)
      }).pipe(Effect.tap((result) => Result.isSuccess(result) ? PubSub.publish(changed, key) : Effect.void))
    return {
      location: (key) => `memory:${key}`,
      read: (key) => Effect.sync(() => Option.fromNullishOr(entries.get(key))),
      swap,
      changes: (key) =>
        Stream.fromPubSub(changed).pipe(Stream.filter((changedKey) => changedKey === key), Stream.as(undefined))
    }
  })

/** A memory store, seeded with the JSON text or values an `auth.json` would hold, by key. */
export const makeMemory = (initial?: Readonly<Record<string, string | object>>): Effect.Effect<CredentialStoreShape> =>
  Effect.map(makeMemoryBackend(initial), make)
