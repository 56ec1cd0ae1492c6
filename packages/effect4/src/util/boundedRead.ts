/**
 * Reading a file someone else may have put there: only a regular file, and
 * at most `maxBytes` of it. A FIFO would block the read forever and
 * `/dev/zero` never ends: both are refused before they are read.
 */
import { Data, Effect, type FileSystem, Option, type PlatformError } from "effect"

/** The most of a credential file (or its sidecar) that is read: 1 MiB, a few hundred times a real one. */
export const maxFileBytes = 1024 * 1024

/** The file is not one to read: not a regular file, or too large. */
export class FileRefused extends Data.TaggedError("FileRefused")<{ readonly problem: string }> {}

const kinds: Partial<Record<FileSystem.File.Type, string>> = {
  FIFO: "a named pipe (FIFO)",
  CharacterDevice: "a character device",
  BlockDevice: "a block device",
  Socket: "a socket",
  Directory: "a folder"
}

const tooLarge = (maxBytes: number) => new FileRefused({ problem: `it is larger than ${maxBytes} bytes` })

/** The text of the regular file at `path` (symbolic links followed), refused beyond `maxBytes`. */
export const readBoundedText = (
  fs: FileSystem.FileSystem,
  path: string,
  maxBytes = maxFileBytes
): Effect.Effect<string, PlatformError.PlatformError | FileRefused> =>
  Effect.gen(function*() {
    // Checked before opening: opening a FIFO for reading waits for a writer.
    const info = yield* fs.stat(path)
    if (info.type !== "File") {
      return yield* new FileRefused({
        problem: `it is ${kinds[info.type] ?? "not a regular file"}, not a regular file`
      })
    }
    if (Number(info.size) > maxBytes) return yield* tooLarge(maxBytes)
    return yield* Effect.scoped(Effect.gen(function*() {
      const handle = yield* fs.open(path, { flag: "r" })
      const chunks: Array<Uint8Array> = []
      let total = 0
      // The size may change between the check and the read: the bound holds on what is read.
      for (;;) {
        const chunk = yield* handle.readAlloc(64 * 1024)
        if (Option.isNone(chunk) || chunk.value.length === 0) break
        total += chunk.value.length
        if (total > maxBytes) return yield* tooLarge(maxBytes)
        chunks.push(chunk.value)
      }
      return Buffer.concat(chunks).toString("utf8")
    }))
  })
