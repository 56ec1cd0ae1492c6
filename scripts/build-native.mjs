// Builds the flock addon (native/src/flock.c) for every platform the package ships it for, with
// Debian's cross compilers, into native/prebuilds/<target>/flock.node. The binaries are committed
// and shipped in the package: installing it compiles nothing and runs no script.
//
// Needs: gcc, musl-tools, gcc-aarch64-linux-gnu + libc6-dev-arm64-cross, mingw-w64 (Debian packages;
// .ci/run installs them). A target whose compiler is missing keeps its committed binary, with a
// warning (a contributor's machine, a git install), unless EFFECT_AUTH_NATIVE=require (then an error).
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const source = join(root, "packages", "core", "native", "src", "flock.c")
const headers = join(root, "node_modules", "node-api-headers")
const include = join(headers, "include")

// Small, position independent, no build path or date inside: the same source gives the same bytes.
const common = [
  "-std=c11",
  "-O2",
  "-Wall",
  "-Wextra",
  "-Werror",
  "-shared",
  `-I${include}`,
  "-ffile-prefix-map=" + root + "=."
]
const elf = ["-fPIC", "-fvisibility=hidden", "-Wl,--build-id=none", "-s"]

export const targets = {
  "linux-x64": { cc: "gcc", flags: [...elf, "-D_DEFAULT_SOURCE"] },
  "linux-x64-musl": { cc: "musl-gcc", flags: [...elf, "-D_DEFAULT_SOURCE"] },
  "linux-arm64": { cc: "aarch64-linux-gnu-gcc", flags: [...elf, "-D_DEFAULT_SOURCE"] },
  "win32-x64": {
    cc: "x86_64-w64-mingw32-gcc",
    // A Node-API addon on Windows imports the napi_* functions from the host executable, node.exe:
    // an import library made from node-api-headers' list of them (as node-gyp's node.lib).
    importLibrary: { dlltool: "x86_64-w64-mingw32-dlltool", def: "node_api.def" },
    // A fixed image base (else derived from the output path) keeps the bytes the same wherever it is built.
    flags: [
      "-s",
      "-static-libgcc",
      "-Wl,--no-insert-timestamp",
      "-Wl,--disable-auto-image-base",
      "-Wl,--image-base=0x180000000"
    ]
  }
}

const has = (command) => {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

export const buildNative = (
  only = Object.keys(targets),
  prebuilds = join(root, "packages", "core", "native", "prebuilds")
) => {
  const skipMissing = process.env.EFFECT_AUTH_NATIVE !== "require"
  const work = mkdtempSync(join(tmpdir(), "flock-build-"))
  try {
    for (const name of only) {
      const target = targets[name]
      const tools = [target.cc, ...(target.importLibrary ? [target.importLibrary.dlltool] : [])]
      const missing = tools.filter((tool) => !has(tool))
      if (missing.length > 0) {
        const message = `native/${name}: ${missing.join(", ")} not found (install Debian's gcc, musl-tools, ` +
          `gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, mingw-w64)`
        if (skipMissing) {
          console.warn(`${message}; the committed binary is kept`)
          continue
        }
        throw new Error(message)
      }
      const extra = []
      if (target.importLibrary) {
        const lib = join(work, "node.a")
        execFileSync(target.importLibrary.dlltool, [
          "-d",
          join(headers, "def", target.importLibrary.def),
          "-l",
          lib,
          "-D",
          "node.exe",
          // Its members are named after this prefix (else after the process id): the same bytes every build.
          "-t",
          "node"
        ])
        extra.push(lib)
      }
      const out = join(prebuilds, name)
      mkdirSync(out, { recursive: true })
      execFileSync(target.cc, [...common, ...target.flags, "-o", join(out, "flock.node"), source, ...extra], {
        stdio: "inherit"
      })
      console.log(join(out, "flock.node"))
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!existsSync(include)) throw new Error("node-api-headers is not installed: run npm ci first")
  buildNative(process.argv.slice(2).length > 0 ? process.argv.slice(2) : undefined)
  writeFileSync(join(root, "packages", "core", "native", "prebuilds", ".gitattributes"), "*.node binary\n")
}
