// The dependency rules of the source tree, checked by `npm run lint:deps` (part of `npm test`).
// The direction, lowest first: errors and util → document → config → stores → oauth → manager →
// signin and client → node, postgres, app-server, cli, testing → bin. A folder imports only its
// own files and lower folders; a folder's internal/ is its own; examples use the package's
// public entry points only.
const order = [
  ["util", "errors"],
  ["document"],
  ["config"],
  ["stores"],
  ["oauth"],
  ["manager"],
  ["signin", "client"],
  ["node", "postgres", "app-server", "cli", "testing"]
]
// The two editions (Effect 3 in src/, Effect 4 in packages/effect4/src/) have the same folders and
// follow the same rules; the Effect-free core (packages/core/src) sits below both.
const edition = "(src|packages/effect4/src)"
const rank = Object.fromEntries(order.flatMap((group, i) => group.map((name) => [name, i])))
const higherThan = (name) => Object.keys(rank).filter((other) => rank[other] > rank[name])

module.exports = {
  forbidden: [
    {
      name: "no-cycles",
      comment: "Modules form no circle (type-only imports included).",
      severity: "error",
      from: {},
      to: { circular: true }
    },
    {
      name: "no-other-internals",
      comment: "A folder's internal/ is used by that folder only.",
      severity: "error",
      from: { path: `^${edition}/([^/]+)/` },
      to: { path: "^(src|packages/effect4/src)/[^/]+/internal/", pathNot: "^$1/$2/" }
    },
    {
      name: "bin-uses-public-modules",
      comment: "The programs in bin/ only wire the library's modules, never their internals.",
      severity: "error",
      from: { path: "^bin/" },
      to: { path: "/internal/" }
    },
    {
      name: "examples-use-the-package",
      comment: "Examples import the package's public entry points only, as a user's code does.",
      severity: "error",
      from: { path: "^examples/" },
      to: {
        path: "^(src|bin|test)/",
        pathNot: "^src/(index|testing/index|postgres/index|app-server/index)\\.ts$"
      }
    },
    {
      name: "core-is-effect-free",
      comment: "packages/core is shared by both editions: it imports no Effect package and neither edition.",
      severity: "error",
      from: { path: "^packages/core/src/" },
      to: { path: "(^|/)node_modules/(effect|@effect/[^/]+)/|^src/|^packages/effect4/" }
    },
    {
      name: "editions-apart",
      comment: "The editions share the core, never each other's code.",
      severity: "error",
      from: { path: "^(src|packages/effect4/src)/" },
      to: { path: "^(src|packages/effect4/src)/", pathNot: "^$1/" }
    },
    {
      name: "library-not-on-tests-or-programs",
      severity: "error",
      from: { path: `^${edition}/` },
      to: { path: "^(test|bin|examples|bench|packages/effect4/test)/" }
    },
    ...Object.keys(rank).filter((name) => higherThan(name).length > 0).map((name) => ({
      name: `${name}-below-${higherThan(name).join("-")}`,
      comment: `${name}/ sits below ${higherThan(name).join(", ")}: it must not import them (in either edition).`,
      severity: "error",
      from: { path: `^${edition}/${name}/` },
      to: { path: `^$1/(${higherThan(name).join("|")})/` }
    }))
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "types", "node", "default"] }
  }
}
