import * as Settings from "@effect-auth-manager/core/settings"
import { describe, expect, it } from "vitest"

const fine: Settings.PlainSettings = {
  refreshTimeoutMillis: Settings.defaults.refreshTimeoutMillis,
  manager: {},
  signInTimeoutMillis: Settings.defaults.signInTimeoutMillis,
  tokenUrl: Settings.defaults.codexTokenUrl
}

describe("the configuration's defaults", () => {
  it("are Codex's, in milliseconds", () => {
    expect(Settings.defaults.codexTokenUrl).toBe("https://auth.openai.com/oauth/token")
    expect(Settings.defaults.refreshTimeoutMillis).toBe(30_000)
    expect(Settings.defaults.signInTimeoutMillis).toBe(600_000)
    expect(Settings.defaultManager.staleAfter).toBe(8 * 24 * 3_600_000)
    expect(Settings.defaultManager.answerLimit).toBe(Settings.defaultAnswerLimitMillis)
    expect(Settings.settingsProblem({ ...fine, manager: Settings.defaultManager })).toBeUndefined()
  })

  it("an empty folder name is no folder: the home folder's .codex", () => {
    expect(Settings.codexHomeOf(undefined, "/home/a")).toBe("/home/a/.codex")
    expect(Settings.codexHomeOf("", "/home/a")).toBe("/home/a/.codex")
    expect(Settings.codexHomeOf("/srv/codex", "/home/a")).toBe("/srv/codex")
  })
})

describe("settingsProblem: the first setting that cannot work", () => {
  it("a duration at or below zero, or infinite, named with its value as Effect writes it", () => {
    expect(Settings.settingsProblem({ ...fine, refreshTimeoutMillis: 0 })).toEqual({
      path: ["refreshTimeout"],
      received: "0",
      allowed: "a finite duration more than zero (e.g. 30 seconds)",
      message: "Expected a finite duration more than zero (e.g. 30 seconds) but received 0"
    })
    expect(Settings.settingsProblem({ ...fine, refreshTimeoutMillis: Infinity })?.received).toBe("Infinity")
    expect(Settings.settingsProblem({ ...fine, signInTimeoutMillis: -5 })).toMatchObject({
      path: ["signIn", "timeout"],
      received: "-5ms"
    })
    expect(Settings.settingsProblem({ ...fine, manager: { backoffCap: 0 } })?.path).toEqual(["manager", "backoffCap"])
    expect(Settings.settingsProblem({ ...fine, manager: { refreshWindow: 0, watchDebounce: 0 } })).toBeUndefined()
    expect(Settings.settingsProblem({ ...fine, manager: { refreshWindow: -90_000 } })?.message).toBe(
      "Expected a finite duration of zero or more (e.g. 5 minutes) but received -1m 30s"
    )
  })

  it("in the configuration's order: durations first, then the token URL, the ports, the database", () => {
    const everything: Settings.PlainSettings = {
      refreshTimeoutMillis: 0,
      manager: { staleAfter: 0 },
      signInTimeoutMillis: 0,
      tokenUrl: "file:///etc/passwd",
      ports: [],
      database: { url: "mysql://x", tablePrefix: "Bad" }
    }
    expect(Settings.settingsProblem(everything)?.path).toEqual(["refreshTimeout"])
    expect(Settings.settingsProblem({ ...everything, refreshTimeoutMillis: 1 })?.path).toEqual([
      "manager",
      "staleAfter"
    ])
    const durationsFine = { ...everything, refreshTimeoutMillis: 1, manager: {}, signInTimeoutMillis: 1 }
    expect(Settings.settingsProblem(durationsFine)?.message).toBe(
      "Expected an http:// or https:// URL, but its scheme is \"file:\", not http: or https:"
    )
    expect(Settings.settingsProblem({ ...durationsFine, tokenUrl: "https://x.example/token" })?.path).toEqual([
      "signIn",
      "ports"
    ])
  })

  it("ports: at least one, each from 0 to 65535", () => {
    expect(Settings.settingsProblem({ ...fine, ports: [1455, 70000] })?.message).toBe(
      "Expected a comma-separated list of ports from 0 to 65535, e.g. 1455,1457 (0 = any free port) but received [1455, 70000]"
    )
    expect(Settings.settingsProblem({ ...fine, ports: [] })?.received).toBe("[]")
    expect(Settings.settingsProblem({ ...fine, ports: [0, 1455] })).toBeUndefined()
  })

  it("the database: a postgres:// URL, never repeated (it holds a password), and a plain table prefix", () => {
    const refused = Settings.settingsProblem({
      ...fine,
      database: { url: "mysql://user:pw-SECRET@host/db", tablePrefix: "auth" }
    })
    expect(refused).toEqual({
      path: ["database", "url"],
      received: undefined,
      allowed: "a postgres:// URL",
      message: "Expected a postgres:// URL"
    })
    expect(JSON.stringify(refused)).not.toContain("SECRET")
    const prefix = Settings.settingsProblem({
      ...fine,
      database: { url: "postgresql://host/db", tablePrefix: "auth-1" }
    })
    expect(prefix?.path).toEqual(["database", "tablePrefix"])
    expect(prefix?.message).toContain("lower-case PostgreSQL name")
    expect(prefix?.message).toContain("\"auth-1\"")
    expect(Settings.settingsProblem({ ...fine, database: { url: "postgres://host/db", tablePrefix: "auth" } }))
      .toBeUndefined()
  })
})
