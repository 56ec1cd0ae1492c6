/**
 * The keyring store: the credential where the Codex CLI keeps it when
 * `cli_auth_credentials_store` is `keyring` (or `auto`), and the same store
 * contract as the `auth.json` file.
 *
 * - The credential is the OS keyring item of `codexKeyring.ts` (one item per
 *   `CODEX_HOME`, its secret the whole document).
 * - Compare-and-set: under Codex's own commit lock, flock(2) on
 *   `$CODEX_HOME/auth.json.lock`, which Codex 0.169 takes around its keyring
 *   writes too (measured: with the lock held, `codex login` gives up after
 *   5 s, "credential commit lock timed out"). Under it the item is re-read,
 *   its revision (a hash of its text) compared with what was read, and
 *   written; never across a network call. A keyring has no transaction: the
 *   lock is what makes the check and the write one step for everyone who
 *   writes the item, Codex included.
 * - Changes: the item is polled (a D-Bus round trip) every `pollInterval`
 *   (default 2 s) and a change of its revision is emitted. The Secret Service
 *   has change signals, but keyring-rs does not expose them, and macOS and
 *   Windows have none.
 * - The refresh lock and the shared health are the file store's, in
 *   `CODEX_HOME`: `auth.json.refresh.lock` and the sidecar
 *   `auth-refresh-state.json` (it holds no secret).
 * - As Codex does, a write to the keyring removes a leftover `auth.json` (it
 *   would hold stale secrets), and a sign-out removes both. With
 *   `fileFallback` (Codex's `auto`), `auth.json` is read while the keyring
 *   holds nothing.
 */
import { sha256Hex } from "@effect-auth-manager/core/canonicalJson"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Duration, Effect, Either, Option, Schedule, Stream } from "effect"
import * as AuthDocument from "../../document/AuthDocument.js"
import { AuthStoreError } from "../../errors/Errors.js"
import * as CodexKeyring from "../CodexKeyring.js"
import type * as CredentialStore from "../CredentialStore.js"
import type { KeyringOptions } from "../FileOptions.js"
import * as FileRead from "../FileRead.js"
import { describe, fileName, isNotFound } from "../FileRead.js"
import * as Keyring from "../Keyring.js"
import * as FileBackend from "./fileStore.js"
import * as Flock from "./flock.js"

type Current = {
  readonly found: Option.Option<CodexKeyring.Found>
  readonly entry: Option.Option<CredentialStore.Entry>
}

/** The backends of the keyed services over the keyring item of `options.codexHome`. */
export const makeKeyring = (options: KeyringOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.resolve(options.codexHome)
    const file = path.join(dir, fileName)
    const credentialKey = options.credentialKey ?? "default"
    const commitLockWait = options.commitLockWait ?? Duration.seconds(5)
    const pollInterval = options.pollInterval ?? Duration.seconds(2)
    const keyring = Keyring.make(options.keyringTimeout ?? Duration.seconds(10))
    // The refresh lock and the shared health: the file store's, in the same folder.
    const { coordinator } = yield* FileBackend.makeFiles(options)

    // Codex canonicalizes CODEX_HOME when it can, else uses it as given: so does this, at each use
    // (the folder may be created, or a link changed, while the program runs).
    const account = fs.realPath(dir).pipe(Effect.orElseSucceed(() => dir), Effect.map(CodexKeyring.accountOf))
    const location = `keyring:${Keyring.service}/${yield* account}`
    const fail = (operation: AuthStoreError["operation"]) => (error: { readonly problem: string }) =>
      new AuthStoreError({ path: location, operation, problem: error.problem })

    const entryOf = (layout: string) => (text: string): CredentialStore.Entry => ({
      text,
      revision: `${layout}:${sha256Hex(text)}`
    })
    const readCurrent: Effect.Effect<Current, AuthStoreError> = Effect.gen(function*() {
      const found = yield* CodexKeyring.read(keyring, yield* account).pipe(Effect.mapError(fail("read")))
      if (Option.isSome(found)) return { found, entry: Option.some(entryOf(found.value.layout)(found.value.text)) }
      if (options.fileFallback !== true) return { found, entry: Option.none() }
      return { found, entry: Option.map(yield* FileRead.readText(fs, file), entryOf("file")) }
    })
    const revisionOf = (entry: Option.Option<CredentialStore.Entry>) =>
      Option.match(entry, { onNone: () => "absent", onSome: (e) => e.revision })

    const withCommitLock = <A, E>(effect: Effect.Effect<A, E>) =>
      fs.makeDirectory(dir, { recursive: true, mode: 0o700 }).pipe(
        Effect.mapError((error) => fail("write")({ problem: describe(error) })),
        Effect.zipRight(
          Flock.withLock(fs, path.join(dir, FileBackend.commitLockName), { waitAtMost: commitLockWait })(effect)
        ),
        Effect.mapError((error): E | AuthStoreError =>
          error instanceof Flock.FlockError
            ? error.reason === "timeout"
              ? fail("lock")({ problem: `${error.path}: ${error.problem}` })
              : fail("write")({ problem: `cannot lock ${error.path}: ${error.problem}` })
            : error
        )
      )

    const removeFile = fs.remove(file).pipe(
      Effect.catchIf(isNotFound, () => Effect.void),
      Effect.mapError((error) => new AuthStoreError({ path: file, operation: "remove", problem: describe(error) }))
    )
    // What Codex writes: the document as compact JSON, unknown fields kept as they are.
    const compact = (text: string) =>
      Either.match(AuthDocument.decodeText(text), {
        onLeft: () => text.trim(),
        onRight: (doc) => AuthDocument.toText(doc, 0)
      })

    const ownKey = (key: string) => key === credentialKey
    const otherKey = (key: string, operation: AuthStoreError["operation"]) =>
      new AuthStoreError({
        path: location,
        operation,
        problem: `the keyring item holds one credential ("${credentialKey}"), not "${key}"`
      })

    const credentials: CredentialStore.Backend = {
      location: () => location,
      read: (key) =>
        ownKey(key) ? Effect.map(readCurrent, (current) => current.entry) : Effect.fail(otherKey(key, "read")),
      swap: (key, expected, next) =>
        !ownKey(key) ? Effect.fail(otherKey(key, "write")) : withCommitLock(Effect.gen(function*() {
          const current = yield* readCurrent
          if (Option.isSome(expected) && expected.value !== revisionOf(current.entry)) return Either.left(current.entry)
          const where = yield* account
          if (Option.isNone(next)) {
            yield* CodexKeyring.remove(keyring, where, current.found).pipe(Effect.mapError(fail("remove")))
            yield* removeFile
            return Either.right(Option.none<CredentialStore.Entry>())
          }
          const text = compact(next.value.text)
          yield* CodexKeyring.write(keyring, where, text, current.found).pipe(Effect.mapError(fail("write")))
          yield* removeFile.pipe(
            Effect.catchAll((error) =>
              Effect.logWarning("Could not remove auth.json after saving to the keyring").pipe(
                Effect.annotateLogs({ file, problem: error.problem })
              )
            )
          )
          return Either.right(Option.some(entryOf("single")(text)))
        })),
      // A failed poll counts as a state of its own: when the keyring answers again, that is a change.
      changes: (key) =>
        !ownKey(key) ? Stream.empty : Stream.repeatEffectWithSchedule(
          readCurrent.pipe(
            Effect.map((current) => revisionOf(current.entry)),
            Effect.orElseSucceed(() => "unreadable")
          ),
          Schedule.spaced(pollInterval)
        ).pipe(Stream.changes, Stream.as(undefined))
    }

    /** Whether the keyring answers at all (for Codex's `auto`: the keyring when it does, else the file). */
    const available = keyring.probe.pipe(
      Effect.as(true),
      Effect.catchAll((error) =>
        Effect.as(
          Effect.logInfo("The keyring cannot be used; the credentials are kept in auth.json").pipe(
            Effect.annotateLogs({ problem: error.problem })
          ),
          false
        )
      )
    )

    return { credentials, coordinator, available } as const
  })
