/**
 * `effect-auth`: runs the commands of `src/Cli.ts` on this process
 * (`npx tsx bin/effect-auth.ts --help`, or `effect-auth` once installed).
 *
 * A shell prompt runs `effect-auth status` often: a plain `status` of the
 * `auth.json` file or of Codex's keyring item (no `--refresh`, no database)
 * reads them and prints a line, so only that is loaded (`cli-status.ts`);
 * everything else loads the full command line (`cli-main.ts`). The bundle keeps them
 * apart (scripts/bundle.mjs): nothing of the other is read from disk.
 */
import { Either, Option } from "effect"
import { closeSync, fstatSync, openSync, readSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"
import { parseStatusArgs } from "../src/cli/StatusArgs.js"
import { configFileName, maxConfigBytes, parseStoreMode } from "../src/stores/CodexConfig.js"

// Whether the credentials are in auth.json or the keyring, as the full program decides it
// (src/internal/storeMode.ts): anything else, or a config.toml it cannot read, goes to the full
// program, which says what is wrong.
const plainStore = (mode: string) => mode === "file" || mode === "keyring"
const credentialsInFileOrKeyring = (): boolean => {
  const override = process.env.EFFECT_AUTH_CREDENTIALS_STORE
  if (override !== undefined) return plainStore(override)
  const codexHome = process.env.CODEX_HOME ?? join(process.env.HOME ?? homedir(), ".codex")
  let fd: number
  try {
    fd = openSync(join(codexHome, configFileName), "r")
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT"
  }
  try {
    const info = fstatSync(fd)
    if (!info.isFile() || info.size > maxConfigBytes) return false
    const bytes = Buffer.alloc(info.size)
    const read = readSync(fd, bytes, 0, info.size, 0)
    const mode = parseStoreMode(bytes.subarray(0, read).toString("utf8"))
    return Either.isRight(mode) && plainStore(Option.getOrElse(mode.right, () => "file"))
  } catch {
    return false
  } finally {
    closeSync(fd)
  }
}

const plain = parseStatusArgs(process.argv.slice(2))
// Read before anything is loaded, to pick what to load: whether the credentials are in a database
// (then the full program reads it again, with the rest of the configuration: src/Configuration.ts).
if (
  plain !== undefined && !plain.refresh && process.env.EFFECT_AUTH_DATABASE_URL === undefined &&
  credentialsInFileOrKeyring()
) {
  void import("./effect-auth-status.js")
} else {
  void import("./effect-auth-main.js")
}
