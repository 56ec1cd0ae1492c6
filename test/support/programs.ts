// Where the programs the e2e tests spawn are: built by the e2e global setup (bundles.ts).
import { join } from "node:path"

export const root = join(import.meta.dirname, "..", "..")

/** The example programs, bundled as the package ships them. */
export const examplesDir = join(root, "dist", "bin")

/** Helper programs of the tests only, never shipped. */
export const helpersDir = join(root, "node_modules", ".cache", "effect-auth-test")

/** The helper programs, by the name `spawnScript` knows them by. */
export const helpers = {
  writer: "test/support/writer.ts",
  "api-caller": "test/support/apiCaller.ts",
  fleet: "test/support/fleet.ts",
  "host-app-server": "test/support/hostAppServer.ts"
} as const

/**
 * The spawned programs' XDG_CACHE_HOME: the bins keep V8's code cache there (scripts/bundle.mjs),
 * shared by every spawn of the run instead of one cold cache per temporary HOME.
 */
export const codeCacheHome = join(helpersDir, "xdg-cache")
