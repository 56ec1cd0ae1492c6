/**
 * A plain `effect-auth status` of the `auth.json` file or of Codex's keyring
 * item, as `bin/effect-auth.ts` runs it: only the reads, the printing and Node's
 * file system are loaded (src/cli/PlainStatus.ts).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Effect, Layer } from "effect"
import { CliIo } from "../src/cli/CliIo.js"
import { plainStatus } from "../src/cli/PlainStatus.js"
import { parseStatusArgs } from "../src/cli/StatusArgs.js"
import { Configuration } from "../src/config/Configuration.js"
import { runProgram } from "../src/node/runProgram.js"
import { layerCliLogger } from "../src/node/StderrLogger.js"
import { resolveMode } from "../src/stores/CodexConfig.js"

const options = parseStatusArgs(process.argv.slice(2))!

// The whole configuration is read, as every command reads it: a setting that cannot work is said here too.
const program = Effect.flatMap(Configuration, (configuration) =>
  Effect.flatMap(resolveMode(configuration), (mode) =>
    // bin/effect-auth.ts sends only these two here; were config.toml changed since, the file is read.
    plainStatus(options, configuration.codexHome, mode === "keyring" ? "keyring" : "file")))

runProgram(program.pipe(Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, CliIo.layerNode))), {
  logger: layerCliLogger,
  interruptedExitCode: 130
})
