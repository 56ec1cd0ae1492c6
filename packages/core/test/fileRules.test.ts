import * as Rules from "@effect-auth-manager/core/fileRules"
import { describe, expect, it } from "vitest"

describe("the file store's names", () => {
  it("auth.json, its locks and its sidecar", () => {
    expect(Rules.fileName).toBe("auth.json")
    expect(Rules.commitLockName).toBe("auth.json.lock")
    expect(Rules.refreshLockName).toBe("auth.json.refresh.lock")
    expect(Rules.sidecarName).toBe("auth-refresh-state.json")
  })

  it("a temporary of an atomic write is <name>.<pid>.<n>.tmp, and only that is taken for one", () => {
    const name = Rules.temporaryName("/home/a/.codex/auth.json", 4242, 17)
    expect(name).toBe("/home/a/.codex/auth.json.4242.17.tmp")
    const ofAuth = Rules.temporaryOf("auth.json")
    expect(ofAuth("auth.json.4242.17.tmp")).toBe(true)
    expect(ofAuth("auth.json.tmp")).toBe(false)
    expect(ofAuth("auth.json")).toBe(false)
    expect(ofAuth("auth.json.lock")).toBe(false)
    expect(ofAuth("auth-refresh-state.json.1.2.tmp")).toBe(false)
    // The owner lock's private file is not one: the store clears those of auth.json at start.
    expect(ofAuth(Rules.ownerTemporaryName("auth.json.lock.owner", 4242, "ab12"))).toBe(false)
    expect(Rules.temporaryOf(Rules.sidecarName)("auth-refresh-state.json.1.2.tmp")).toBe(true)
  })

  it("which errno codes mean what", () => {
    for (const code of ["EBUSY", "EPERM", "EXDEV", "EACCES"]) expect(Rules.cannotReplace.has(code)).toBe(true)
    expect(Rules.cannotReplace.has("ENOENT")).toBe(false)
    for (const code of ["EROFS", "EACCES", "EPERM"]) expect(Rules.cannotOpenLock.has(code)).toBe(true)
    expect(Rules.cannotOpenLock.has("EAGAIN")).toBe(false)
    expect(Rules.lockBusy.has("EAGAIN") && Rules.lockBusy.has("EWOULDBLOCK")).toBe(true)
  })
})

describe("the owner file of a lock where no lock primitive loads", () => {
  it("its names", () => {
    expect(Rules.ownerName("/c/auth.json.lock")).toBe("/c/auth.json.lock.owner")
    expect(Rules.breakerName("/c/auth.json.lock.owner")).toBe("/c/auth.json.lock.owner.break")
  })

  it("a line of pid, host (no whitespace) and nonce, read back", () => {
    const line = Rules.ownerLine(123, "my host", "00ff")
    expect(line).toBe("123 my_host 00ff")
    expect(Rules.parseOwnerLine(`${line}\n`)).toEqual({ pid: 123, host: "my_host" })
    for (const text of ["", "123 host", "x host 00ff", "123 host nothex", "123 a b 00ff"]) {
      expect(Rules.parseOwnerLine(text)).toBeUndefined()
    }
  })

  const owner = (over: Partial<Rules.OwnerFile>): Rules.OwnerFile => ({
    text: "123 here 00ff",
    here: "here",
    pid: 999,
    modifiedMs: 5_000,
    bootMs: 1_000,
    gone: () => false,
    ...over
  })

  it("stale when its process is gone, or it predates the boot, or it is no owner line; never another host's", () => {
    expect(Rules.ownerIsStale(owner({}))).toBe(false)
    expect(Rules.ownerIsStale(owner({ gone: (pid) => pid === 123 }))).toBe(true)
    expect(Rules.ownerIsStale(owner({ modifiedMs: 500 }))).toBe(true)
    expect(Rules.ownerIsStale(owner({ modifiedMs: undefined }))).toBe(false)
    expect(Rules.ownerIsStale(owner({ text: "garbage" }))).toBe(true)
    expect(Rules.ownerIsStale(owner({ text: "123 elsewhere 00ff", gone: () => true, modifiedMs: 0 }))).toBe(false)
    // Its own line is never stale by its pid (the process is here).
    expect(Rules.ownerIsStale(owner({ pid: 123, gone: () => true }))).toBe(false)
  })

  it("processGone: this process exists; a pid no process has is gone", () => {
    expect(Rules.processGone(process.pid)).toBe(false)
    expect(Rules.processGone(2 ** 22 + 12_345)).toBe(true)
  })
})

describe("the store's warnings", () => {
  it("say what is wrong and what to do", () => {
    expect(Rules.writableByAll(0o777)).toBe(true)
    expect(Rules.writableByAll(0o755)).toBe(false)
    expect(Rules.openToOthers(0o644)).toBe(true)
    expect(Rules.openToOthers(0o600)).toBe(false)
    expect(Rules.writableByAllWarning("/c")).toContain("Run: chmod 700 /c")
    expect(Rules.notWritableWarning("/c")).toContain("chmod u+rwx /c")
    expect(Rules.openToOthersWarning("/c/auth.json", 0o100644, "/d/auth.json")).toBe(
      "/c/auth.json is readable by other users (mode 644): it holds secrets. Run: chmod 600 /d/auth.json"
    )
    expect(Rules.codexLockWarning("no flock here")).toMatch(/do not run the Codex CLI.*Why: no flock here$/)
    expect(Rules.lockFallbackWarning("/c/auth.json.refresh.lock", "/c")).toContain("until /c can be written")
    expect(Rules.otherKeyProblem("default", "tenant")).toBe(
      "auth.json holds one credential (\"default\"), not \"tenant\""
    )
    expect(Rules.setAsideName("/c/auth.json", 42)).toBe("/c/auth.json.unreadable-42")
  })

  it("a keyring without a Secret Service is told what to do; other problems are kept as they are", () => {
    expect(Rules.keyringProblem("no secret service provider or dbus session found")).toContain(
      "cli_auth_credentials_store = \"file\""
    )
    expect(Rules.keyringProblem("Entry is matched by 2 credentials")).toBe("Entry is matched by 2 credentials")
  })
})
