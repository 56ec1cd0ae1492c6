/**
 * Node's file system with faults injected: a bind-mounted auth.json (rename fails with EBUSY), an
 * immutable one (EPERM), a folder this user may not write (EACCES). The faults can be changed while
 * a test runs, so a file system can heal.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { SystemError, type SystemErrorReason } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Layer } from "effect"

export interface Faults {
  /** The errno a rename onto this path fails with, if any. */
  rename?: ((to: string) => string | undefined) | undefined
  /** The errno an open of this path with this flag fails with, if any. */
  open?: ((path: string, flag: string) => string | undefined) | undefined
  /** The errno `access` of this path fails with, if any. */
  access?: ((path: string) => string | undefined) | undefined
}

const reasons: Record<string, SystemErrorReason> = { EBUSY: "Busy", EACCES: "PermissionDenied", ENOENT: "NotFound" }

const failure = (code: string, method: string, path: string) =>
  new SystemError({
    reason: reasons[code] ?? "Unknown",
    module: "FileSystem",
    method,
    pathOrDescriptor: path,
    description: `${code}: injected fault, ${method} '${path}'`,
    cause: Object.assign(new Error(code), { code })
  })

/** `FileSystem` and `Path` for Node, with the faults `faults` holds at each call. */
export const layerFaulty = (faults: Faults) =>
  Layer.effect(
    FileSystem.FileSystem,
    Effect.map(FileSystem.FileSystem, (fs): FileSystem.FileSystem => ({
      ...fs,
      rename: (from, to) => {
        const code = faults.rename?.(to)
        return code === undefined ? fs.rename(from, to) : Effect.fail(failure(code, "rename", to))
      },
      open: (path, options) => {
        const code = faults.open?.(path, options?.flag ?? "r")
        return code === undefined ? fs.open(path, options) : Effect.fail(failure(code, "open", path))
      },
      access: (path, options) => {
        const code = faults.access?.(path)
        return code === undefined ? fs.access(path, options) : Effect.fail(failure(code, "access", path))
      }
    }))
  ).pipe(Layer.provide(NodeFileSystem.layer), Layer.merge(NodePath.layer))
