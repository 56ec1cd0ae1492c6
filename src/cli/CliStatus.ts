/**
 * What `effect-auth status` needs, without `@effect/cli`: the command's
 * handler on the `AuthManager`, and the process bindings. `Cli.ts` builds the
 * full command line on these; the bin answers `status --refresh` with them
 * alone, so a shell prompt does not load the parser, its help renderer and
 * its config-file readers (yaml, toml, ini) to print one line. A plain
 * `status` (no refresh) is answered by `plainStatus.ts`, without the manager.
 */
import { Effect } from "effect"
import { AuthManager } from "../manager/AuthManager.js"
import { AuthStore } from "../stores/AuthStore.js"
import { withProcessConsole } from "./CliIo.js"
import { report, type StatusOptions } from "./internal/statusCommand.js"

export { CliIo, consoleFor, setExitCode } from "./CliIo.js"
export {
  describe,
  jsonView,
  notSignedIn,
  parseStatusArgs,
  type StatusOptions,
  usable
} from "./internal/statusCommand.js"

/** `effect-auth status`: who is signed in, whether the credentials work; exit code 0 when usable. */
export const status = (options: StatusOptions) =>
  Effect.gen(function*() {
    const auth = yield* AuthManager
    const { location } = yield* AuthStore
    // Without --refresh, a read: what is stored, even a stale token, and no network.
    const result = yield* auth.getAuthStatus({
      includeToken: options.includeToken,
      refreshToken: options.refresh,
      noRefresh: !options.refresh
    })
    yield* report(yield* auth.state, result, options, location)
  })

/** `status` as `Cli.run` runs it (the same console), for the bin's `status --refresh`. */
export const runStatus = (options: StatusOptions) => withProcessConsole(status(options))
