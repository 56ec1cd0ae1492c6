import * as Rules from "@effect-auth-manager/core/rules"
import { variables } from "@effect-auth-manager/core/variables"
import { describe, expect, it } from "vitest"

describe("the settings' rules", () => {
  it("a token endpoint is an http:// or https:// URL", () => {
    expect(Rules.tokenUrlProblem("https://auth.openai.com/oauth/token")).toBeUndefined()
    expect(Rules.tokenUrlProblem("http://127.0.0.1:8080/token")).toBeUndefined()
    expect(Rules.tokenUrlProblem("auth.openai.com/token")).toBe("it is not a URL")
    expect(Rules.tokenUrlProblem("file:///etc/passwd")).toBe("its scheme is \"file:\", not http: or https:")
  })

  it("durations: finite, more than zero unless zero is allowed", () => {
    expect(Rules.durationFits(1, "positive")).toBe(true)
    expect(Rules.durationFits(0.001, "positive")).toBe(true)
    expect(Rules.durationFits(0, "positive")).toBe(false)
    expect(Rules.durationFits(0, "nonNegative")).toBe(true)
    expect(Rules.durationFits(-1, "nonNegative")).toBe(false)
    expect(Rules.durationFits(Infinity, "nonNegative")).toBe(false)
    expect(Rules.durationFits(NaN, "positive")).toBe(false)
    expect(Rules.durationAllowed.positive).toContain("more than zero")
  })

  it("ports: a comma-separated list from 0 to 65535, no empty item", () => {
    expect(Rules.parsePorts("1455, 1457,0")).toEqual([1455, 1457, 0])
    expect(Rules.parsePorts("65535")).toEqual([65535])
    for (const text of ["", "1455,", "65536", "-1", "1e3", "14 55", "123456"]) {
      expect(Rules.parsePorts(text), text).toBeUndefined()
    }
    expect([0, 65535].every(Rules.isPort)).toBe(true)
    expect([-1, 65536, 1.5].some(Rules.isPort)).toBe(false)
  })

  it("the database: a postgres URL, a short lower-case table prefix, 1 to 100 connections", () => {
    expect(["postgres://h/db", "postgresql://u@h/db"].every(Rules.isDatabaseUrl)).toBe(true)
    expect(["mysql://h/db", "h/db", " postgres://h"].some(Rules.isDatabaseUrl)).toBe(false)
    for (const prefix of ["effect_auth", "_x", "a".repeat(40)]) expect(Rules.tablePrefixProblem(prefix)).toBeUndefined()
    for (const prefix of ["", "1auth", "Auth", "a-b", "a".repeat(41), "a;drop"]) {
      expect(Rules.tablePrefixProblem(prefix)).toBe(
        `Expected a lower-case PostgreSQL name: a letter or _, then letters, digits or _, at most 40 characters (e.g. effect_auth) but received "${prefix}"`
      )
    }
    expect(["1", " 100 ", "4"].map(Rules.parsePoolSize)).toEqual([1, 100, 4])
    for (const text of ["", " ", "0", "101", "2.5", "x"]) expect(Rules.parsePoolSize(text), text).toBeUndefined()
  })

  it("every variable is described, and the names are the environment's", () => {
    for (const [name, description] of Object.entries(variables)) {
      expect(name).toMatch(/^(CODEX|EFFECT_AUTH)_[A-Z_]+$/)
      expect(description.length).toBeGreaterThan(10)
    }
  })
})
