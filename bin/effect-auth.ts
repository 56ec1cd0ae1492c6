/**
 * `effect-auth`: runs the commands of `src/Cli.ts` on this process
 * (`npx tsx bin/effect-auth.ts --help`, or `effect-auth` once installed).
 *
 * A shell prompt runs `effect-auth status` often: a plain `status` of the
 * `auth.json` file (no `--refresh`, no database) reads two files and prints a
 * line, so only that is loaded (`cli-status.ts`); everything else loads the
 * full command line (`cli-main.ts`). The bundle keeps them apart
 * (scripts/bundle.mjs): nothing of the other is read from disk.
 */
import { parseStatusArgs } from "../src/cli/StatusArgs.js"

const plain = parseStatusArgs(process.argv.slice(2))
// Read before anything is loaded, to pick what to load: whether the credentials are in a database
// (then the full program reads it again, with the rest of the configuration: src/Configuration.ts).
if (plain !== undefined && !plain.refresh && process.env.EFFECT_AUTH_DATABASE_URL === undefined) {
  void import("./effect-auth-status.js")
} else {
  void import("./effect-auth-main.js")
}
