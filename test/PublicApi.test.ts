// The package as a user's compiler sees it: the declarations built from the entry points
// (package.json "exports"), followed through every relative import, never name an internal/
// module; and the names the library promises are there.
import { describe, expect, it } from "@effect/vitest"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import ts from "typescript"
import * as Library from "../src/index.js"
import * as Testing from "../src/testing/index.js"

const root = join(import.meta.dirname, "..")
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  exports: Record<string, string | { types?: string }>
}
// dist/src/x/index.d.ts ← src/x/index.ts
const entries = Object.values(pkg.exports)
  .flatMap((target) => typeof target === "object" && target.types ? [target.types] : [])
  .map((types) => join(root, types.replace(/^\.\/dist\//, "").replace(/\.d\.ts$/, ".ts")))

const newestChange = (dir: string, suffix: string): number =>
  Math.max(
    0,
    ...readdirSync(dir, { recursive: true, encoding: "utf8" })
      .filter((file) => file.endsWith(suffix))
      .map((file) => statSync(join(dir, file)).mtimeMs)
  )

/**
 * The declarations `npm run build` wrote (dist/src), when every one of them is newer than every
 * source it could come from: CI builds before it tests, and a fresh emit takes 10–25 s of this file.
 */
const builtDeclarations = (): Map<string, string> | undefined => {
  const dist = join(root, "dist")
  if (!existsSync(join(dist, "src"))) return undefined
  const built = readdirSync(join(dist, "src"), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".d.ts"))
    .map((file) => join(dist, "src", file))
  if (built.length === 0) return undefined
  const oldest = Math.min(...built.map((file) => statSync(file).mtimeMs))
  const sources = Math.max(
    newestChange(join(root, "src"), ".ts"),
    newestChange(join(root, "packages", "core", "src"), ".ts"),
    ...["tsconfig.json", "tsconfig.build.json"].map((file) => statSync(join(root, file)).mtimeMs)
  )
  if (oldest < sources) return undefined
  return new Map(built.map((file) => [relative(dist, file), readFileSync(file, "utf8")]))
}

/** Emits the declarations of the entry points and everything they import, in memory. */
const emitDeclarations = (): Map<string, string> => {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, "tsconfig.build.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"))
    }
  })!
  const program = ts.createProgram(entries, {
    ...config.options,
    emitDeclarationOnly: true,
    declaration: true,
    sourceMap: false,
    declarationMap: false,
    noCheck: true
  })
  const out = new Map<string, string>()
  program.emit(undefined, (file, text) => {
    if (file.endsWith(".d.ts")) out.set(relative(join(root, "dist"), file), text)
  })
  return out
}

describe("public API", () => {
  it("the built declarations reachable from the entry points name no internal/ module", () => {
    const files = builtDeclarations() ?? emitDeclarations()
    const reachable = new Set<string>()
    const visit = (file: string) => {
      if (reachable.has(file)) return
      reachable.add(file)
      const text = files.get(file)
      expect(text, `declarations of ${file}`).toBeDefined()
      for (const [, specifier] of text!.matchAll(/(?:from |import\()"(\.{1,2}\/[^"]+)"/g)) {
        visit(
          relative(join(root, "dist"), resolve(join(root, "dist", dirname(file)), specifier!.replace(/\.js$/, ".d.ts")))
        )
      }
    }
    for (const entry of entries) visit(relative(root, entry).replace(/\.ts$/, ".d.ts"))
    expect(reachable.size).toBeGreaterThan(15)
    expect([...reachable].filter((file) => file.includes("internal/"))).toEqual([])
  }, 60_000)

  it("the root exports the promised names, and the test helpers only from ./testing", () => {
    for (
      const name of [
        "AuthManager",
        "AuthStore",
        "TokenRefresher",
        "layerNode",
        "PermanentRefreshError",
        "SignIn",
        "AuthHttpClient",
        "Configuration",
        "KeyedAuthManager"
      ]
    ) {
      expect(Library).toHaveProperty(name)
    }
    expect(Library.AuthManager).toHaveProperty("layer")
    expect(Object.keys(Testing).sort()).toEqual(["CodexIssuer", "TokenEndpoint", "TokenRefresherTest"])
  })
})
