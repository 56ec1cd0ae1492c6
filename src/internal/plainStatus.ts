/**
 * A plain `effect-auth status` (no refresh) of the `auth.json` file: it reads
 * the file and its shared-health sidecar as the store and the manager would
 * at start, and prints through the same `report` as the full command line,
 * without building either. The bin runs it alone, so a shell prompt does not
 * load the store's locks and watch, the manager, the HTTP client or the
 * parser (issue #14). Anything else goes to the full command line.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Effect, Option } from "effect"
import * as AuthDocument from "../AuthDocument.js"
import { withProcessConsole } from "./cliIo.js"
import * as FileRead from "./fileRead.js"
import { warnIfCodexUnlocked } from "./flock.js"
import * as RefreshState from "./refreshState.js"
import * as SharedState from "./sharedState.js"
import type { StatusOptions } from "./statusArgs.js"
import { report } from "./statusCommand.js"

/** `effect-auth status` (without `--refresh`) of the `auth.json` in `codexHome`. */
export const plainStatus = (options: StatusOptions, codexHome: string) =>
  withProcessConsole(Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = path.resolve(codexHome)
    // As the manager starts: an unreadable file is said, and is no credentials.
    const snapshot = yield* FileRead.readSnapshot(fs, path.join(dir, FileRead.fileName)).pipe(
      Effect.catchTag("AuthStoreError", (error) => Effect.logWarning(error.message).pipe(Effect.as(AuthDocument.absent)))
    )
    const sidecar = path.join(dir, FileRead.sidecarName)
    const shared = yield* FileRead.readShared(fs, sidecar).pipe(
      Effect.catchAll((problem) =>
        Effect.logWarning("Ignoring the shared refresh state").pipe(
          Effect.annotateLogs({ sidecar, problem }),
          Effect.as(Option.none())
        )
      )
    )
    const state = SharedState.initialState(snapshot, shared)
    // As the store says at start: the next write would not keep the Codex CLI out.
    yield* warnIfCodexUnlocked
    yield* report(RefreshState.view(state), RefreshState.statusOf(state, options.includeToken), options)
  }))
