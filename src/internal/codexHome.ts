/** Where Codex keeps its files, apart so that `effect-auth status` can read it without the store (issue #14). */
import { Config } from "effect"

/** `CODEX_HOME`, else `$HOME/.codex`. */
export const codexHomeConfig = (): Config.Config<string> =>
  Config.string("CODEX_HOME").pipe(
    Config.orElse(() => Config.string("HOME").pipe(Config.map((home) => `${home}/.codex`)))
  )
