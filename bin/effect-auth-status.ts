/**
 * A plain `effect-auth status` of the `auth.json` file or of Codex's keyring
 * item, as `bin/effect-auth.ts` runs it: only the reads, the printing and Node's
 * file system are loaded (src/cli/PlainStatus.ts).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { ConfigError, Console, Effect, Exit, Layer } from "effect"
import { CliIo } from "../src/cli/CliIo.js"
import { plainStatus } from "../src/cli/PlainStatus.js"
import { parseStatusArgs } from "../src/cli/StatusArgs.js"
import { Configuration } from "../src/config/Configuration.js"
import { layerCliLogger } from "../src/node/StderrLogger.js"
import { resolveMode } from "../src/stores/CodexConfig.js"

const options = parseStatusArgs(process.argv.slice(2))!

// The whole configuration is read, as every command reads it: a setting that cannot work is said here too.
Effect.flatMap(Configuration, (configuration) =>
  Effect.flatMap(resolveMode(configuration), (mode) =>
    // examples/cli.ts sends only these two here; were config.toml changed since, the file is read.
    plainStatus(options, configuration.codexHome, mode === "keyring" ? "keyring" : "file"))).pipe(
    Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, CliIo.layerNode)),
    Effect.provide(layerCliLogger),
    Effect.provide(Configuration.layerConfig),
    Effect.catchIf(
      ConfigError.isConfigError,
      (error) =>
        Console.error(`Configuration error: ${String(error).replace(/^Error: /, "")}`).pipe(
          Effect.zipRight(Effect.sync(() => (process.exitCode = 1)))
        )
    ),
    (program) =>
      NodeRuntime.runMain(program, {
        disablePrettyLogger: true,
        teardown: (exit, onExit) => onExit(Exit.isInterrupted(exit) ? 130 : Exit.isFailure(exit) ? 1 : 0)
      })
  )
