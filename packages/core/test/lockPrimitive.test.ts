import { find, type Host, nodeHost, targetsFor } from "@effect-auth-manager/core/lockPrimitive"
import { join } from "node:path"
import { describe, expect, it } from "vitest"

// A package installed at /app/node_modules/pkg with the prebuilt addons of every target.
const root = "/app/node_modules/pkg"
const files = new Set([
  join(root, "native", "prebuilds"),
  ...["linux-x64", "linux-x64-musl", "linux-arm64", "win32-x64"].map((target) =>
    join(root, "native", "prebuilds", target, "flock.node")
  )
])
const addon = { lock: () => true, unlock: () => undefined }

const host = (overrides: Partial<Host>) =>
  find({
    platform: "linux",
    arch: "x64",
    from: join(root, "dist", "src", "stores", "internal"),
    exlock: undefined,
    nonblock: 2048,
    exists: (path) => files.has(path),
    load: () => {
      throw new Error("not loaded in this test")
    },
    ...overrides
  })

const missingModule = () => {
  const error = new Error("Cannot find module './flock.node'") as NodeJS.ErrnoException
  error.code = "MODULE_NOT_FOUND"
  throw error
}

describe("the lock primitive of each platform", () => {
  it("the targets tried, most likely first: glibc before musl", () => {
    expect(targetsFor("linux", "x64")).toEqual(["linux-x64", "linux-x64-musl"])
    expect(targetsFor("linux", "arm64")).toEqual(["linux-arm64"])
    expect(targetsFor("win32", "x64")).toEqual(["win32-x64"])
    expect(targetsFor("darwin", "arm64")).toEqual([])
  })

  it("the addon is found up to four folders above `from`, and loaded", () => {
    const primitive = host({ load: () => addon })
    expect(primitive).toMatchObject({
      _tag: "Addon",
      file: join(root, "native", "prebuilds", "linux-x64", "flock.node")
    })
    expect(host({ from: join(root, "dist", "bin"), load: () => addon })._tag).toBe("Addon")
    expect(host({ from: join(root, "a", "b", "c", "d", "e"), load: () => addon })).toEqual({
      _tag: "None",
      reason: "the package's native/prebuilds folder is missing"
    })
  })

  it("on musl, where the glibc build does not load, the musl build is the one used", () => {
    const loaded: Array<string> = []
    const primitive = host({
      load: (file) => {
        loaded.push(file)
        if (file.includes("linux-x64-musl")) return addon
        throw new Error("Error loading shared library libc.so.6: No such file or directory")
      }
    })
    expect(primitive._tag).toBe("Addon")
    expect(loaded.map((file) => file.split("/").at(-2))).toEqual(["linux-x64", "linux-x64-musl"])
  })

  it("macOS needs no native code: an open with O_EXLOCK | O_NONBLOCK", () => {
    expect(host({ platform: "darwin", arch: "arm64", exlock: 32 })).toEqual({ _tag: "OpenExlock", flags: 32 | 2048 })
    expect(host({ platform: "darwin", arch: "arm64" })._tag).toBe("None")
  })

  it("an unknown platform, or an addon that does not load, is none, with the reason and no folder advice", () => {
    const unknown = host({ platform: "freebsd", arch: "x64" })
    expect(unknown).toEqual({ _tag: "None", reason: "no lock addon is built for freebsd-x64" })
    const broken = host({ load: missingModule })
    expect(broken._tag).toBe("None")
    if (broken._tag !== "None") return
    expect(broken.reason).toContain("did not load: Cannot find module './flock.node'")
    expect(broken.reason).not.toMatch(/folder exists|may write/)
    expect(host({ from: "/" })).toEqual({ _tag: "None", reason: "the package's native/prebuilds folder is missing" })
    expect(host({ load: () => ({}) })).toMatchObject({
      _tag: "None",
      reason: expect.stringContaining("is not the flock addon")
    })
    expect(host({ exists: (path) => path.endsWith("prebuilds") })).toMatchObject({
      _tag: "None",
      reason: expect.stringContaining("linux-x64-musl/flock.node is missing")
    })
  })
})

describe("this machine", () => {
  it("finds the addon the core package ships, from the core's own folder", () => {
    const primitive = find(nodeHost())
    if (process.platform === "linux" && process.arch === "x64") {
      expect(primitive._tag).toBe("Addon")
      expect(primitive._tag === "Addon" && primitive.file).toMatch(/core[/\\]native[/\\]prebuilds[/\\]linux-x64/)
    }
  })
})
