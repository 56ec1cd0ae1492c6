/**
 * The Codex-compatible `auth.json` as the keyed services: a `CredentialStore`
 * and a `RefreshCoordinator` holding one credential (key `default` unless
 * told otherwise), with Codex's `auth.json.lock` around each re-read,
 * compare and write, our `auth.json.refresh.lock` across a token request,
 * and the sidecar for the shared health. The embedded default backend, next
 * to memory (`CredentialStore.layerMemory`) and PostgreSQL
 * (`effect-auth-manager/postgres`).
 */
import { Effect, type FileSystem, Layer, type Path } from "effect"
import { Configuration } from "../config/Configuration.js"
import type * as CredentialStore from "./CredentialStore.js"
import { type FileOptions, fileOptionsOf } from "./FileOptions.js"
import * as FileBackend from "./internal/fileStore.js"
import type * as RefreshCoordinator from "./RefreshCoordinator.js"
import * as StoreServices from "./StoreServices.js"

export type Options = FileOptions

/**
 * Both services over the `auth.json` in `options.codexHome`.
 *
 * @example
 * const { credentials } = yield* FileStore.make({ codexHome: "/home/me/.codex" })
 */
export const make = (
  options: Options
): Effect.Effect<StoreServices.StoreServices, never, FileSystem.FileSystem | Path.Path> =>
  Effect.map(FileBackend.makeFiles(options), StoreServices.fromBackends)

/** Both services over the `auth.json` in `options.codexHome`. */
export const layer = (
  options: Options
): Layer.Layer<
  CredentialStore.CredentialStore | RefreshCoordinator.RefreshCoordinator,
  never,
  FileSystem.FileSystem | Path.Path
> => StoreServices.layerOf(make(options))

/** `layer` in the `codexHome` of the `Configuration` in context. */
export const layerConfig: Layer.Layer<
  CredentialStore.CredentialStore | RefreshCoordinator.RefreshCoordinator,
  never,
  Configuration | FileSystem.FileSystem | Path.Path
> = Layer.unwrap(Effect.map(Configuration, (configuration) => layer(fileOptionsOf(configuration))))
