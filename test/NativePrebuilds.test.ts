// The flock addon the package ships for each platform: only linux-x64 runs here (test/Flock.test.ts,
// test/e2e/CodexLock.test.ts); the others are checked as files: the right format and machine, the
// right C library, and the Node-API entry point exported.
import * as LockPrimitive from "@effect-auth-manager/core/lockPrimitive"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { readElf, readPe } from "./support/binaries.js"
// @ts-expect-error: a plain ES module without types
import { buildNative, targets } from "../scripts/build-native.mjs"

const root = join(import.meta.dirname, "..")
const prebuilt = (target: string, dir = join(root, "packages", "core", "native", "prebuilds")) =>
  readFileSync(join(dir, target, "flock.node"))
const entryPoint = "napi_register_module_v1"
const EM_X86_64 = 62
const EM_AARCH64 = 183
const ET_DYN = 3

describe("the prebuilt flock addons", () => {
  it("one for each target the loader picks, and nothing else", () => {
    const picked = [["linux", "x64"], ["linux", "arm64"], ["win32", "x64"]].flatMap(([p, a]) =>
      LockPrimitive.targetsFor(p!, a!)
    )
    expect([...picked].sort()).toEqual(Object.keys(targets).sort())
  })

  it("linux-x64: an x86-64 ELF shared object for glibc, exporting the Node-API entry point", () => {
    const elf = readElf(prebuilt("linux-x64"))
    expect({ machine: elf.machine, type: elf.type, needed: elf.needed }).toEqual({
      machine: EM_X86_64,
      type: ET_DYN,
      needed: ["libc.so.6"]
    })
    expect(elf.exported).toContain(entryPoint)
  })

  it("linux-x64-musl: an x86-64 ELF shared object for musl (musl's libc.so, not glibc's libc.so.6)", () => {
    const elf = readElf(prebuilt("linux-x64-musl"))
    expect({ machine: elf.machine, type: elf.type, needed: elf.needed }).toEqual({
      machine: EM_X86_64,
      type: ET_DYN,
      needed: ["libc.so"]
    })
    expect(elf.exported).toContain(entryPoint)
  })

  it("linux-arm64: an AArch64 ELF shared object for glibc", () => {
    const elf = readElf(prebuilt("linux-arm64"))
    expect({ machine: elf.machine, type: elf.type, needed: elf.needed }).toEqual({
      machine: EM_AARCH64,
      type: ET_DYN,
      needed: ["libc.so.6"]
    })
    expect(elf.exported).toContain(entryPoint)
  })

  it("win32-x64: an x64 PE DLL importing Node-API from node.exe and LockFileEx from the kernel", () => {
    const pe = readPe(prebuilt("win32-x64"))
    expect({ machine: pe.machine, dll: pe.dll }).toEqual({ machine: 0x8664, dll: true })
    expect(pe.exported).toContain(entryPoint)
    expect(pe.imports["node.exe"]).toEqual(expect.arrayContaining(["napi_create_function", "napi_get_boolean"]))
    expect(pe.imports["KERNEL32.dll"]).toEqual(expect.arrayContaining(["LockFileEx", "UnlockFileEx", "GetProcAddress"]))
  })

  it("the committed binaries are what scripts/build-native.mjs builds from native/src", () => {
    const out = mkdtempSync(join(tmpdir(), "flock-prebuilds-"))
    try {
      execFileSync("sh", ["-c", "command -v gcc musl-gcc aarch64-linux-gnu-gcc x86_64-w64-mingw32-gcc"])
      buildNative(undefined, out)
      for (const target of Object.keys(targets)) {
        expect(prebuilt(target, out).equals(prebuilt(target)), target).toBe(true)
      }
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })
})
