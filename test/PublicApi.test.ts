// The package as a user's compiler sees it: the declarations built from the entry points
// (package.json "exports"), followed through every relative import, never name an internal/
// module; and the names the library promises are there.
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
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

/** Emits the declarations of the entry points and everything they import, in memory. */
const declarations = (): Map<string, string> => {
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
    const files = declarations()
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
