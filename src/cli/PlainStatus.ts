/**
 * A plain `effect-auth status` (no refresh) of the `auth.json` file: it reads
 * the file and its shared-health sidecar as the store and the manager would
 * at start, and prints through the same `report` as the full command line,
 * without building either. The bin runs it alone, so a shell prompt does not
 * load the store's locks and watch, the manager, the HTTP client or the
 * parser. With the credentials in the OS keyring, the item is
 * read the same way (the keyring binding is loaded then, nothing else of the
 * store). Anything else goes to the full command line.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Duration, Effect, Option } from "effect"
import * as AuthDocument from "../document/AuthDocument.js"
import { AuthStoreError } from "../errors/Errors.js"
import * as RefreshState from "../manager/RefreshState.js"
import * as SharedState from "../manager/SharedState.js"
import * as CodexKeyring from "../stores/CodexKeyring.js"
import { snapshotOf } from "../stores/CredentialStore.js"
import * as FileRead from "../stores/FileRead.js"
import * as Keyring from "../stores/Keyring.js"
import { withProcessConsole } from "./CliIo.js"
import { report } from "./internal/statusCommand.js"
import type { StatusOptions } from "./StatusArgs.js"

/** The snapshot Codex's keyring item for `dir` holds (as the keyring store reads it). */
const readKeyring = (fs: FileSystem.FileSystem, dir: string) =>
  Effect.gen(function*() {
    const account = CodexKeyring.accountOf(yield* fs.realPath(dir).pipe(Effect.orElseSucceed(() => dir)))
    const location = `keyring:${Keyring.service}/${account}`
    const found = yield* CodexKeyring.read(Keyring.make(Duration.seconds(10)), account).pipe(
      Effect.mapError((error) => new AuthStoreError({ path: location, operation: "read", problem: error.problem }))
    )
    return yield* snapshotOf(location)(Option.map(found, (item) => item.text))
  })

/** `effect-auth status` (without `--refresh`) of the `auth.json` in `codexHome`, or of its keyring item. */
export const plainStatus = (options: StatusOptions, codexHome: string, store: "file" | "keyring" = "file") =>
  withProcessConsole(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.resolve(codexHome)
    // As the manager starts: an unreadable file is said, and is no credentials.
    const file = path.join(dir, FileRead.fileName)
    const snapshot = yield* (store === "keyring" ? readKeyring(fs, dir) : FileRead.readSnapshot(fs, file)).pipe(
      Effect.catchTag(
        "AuthStoreError",
        (error) => Effect.logWarning(error.message).pipe(Effect.as(AuthDocument.absent))
      )
    )
    const sidecar = path.join(dir, FileRead.sidecarName)
    const shared = yield* FileRead.readShared(fs, sidecar).pipe(
      Effect.catchAll((error) =>
        Effect.logWarning("Ignoring the shared refresh state").pipe(
          Effect.annotateLogs({ sidecar, problem: error.problem }),
          Effect.as(Option.none())
        )
      )
    )
    const state = SharedState.initialState(snapshot, shared)
    // As the store says at start: the next write would not keep the Codex CLI out.
    if (store === "file") yield* FileRead.warnIfCodexUnlocked
    const where = store === "keyring" ? "the OS keyring" : file
    yield* report(RefreshState.view(state), RefreshState.statusOf(state, options.includeToken), options, where)
  }))
