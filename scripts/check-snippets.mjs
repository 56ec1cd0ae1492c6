// Type-checks every TypeScript snippet of the documentation as a user would paste it.
//
//   npm run build && node scripts/check-snippets.mjs [--keep]
//
// Each ```ts (or ```typescript) block of README.md, CONTRIBUTING.md and docs/**/*.md becomes a file of
// its own in a throwaway project whose node_modules resolves this package, by its name, to the built
// output (a symlink to the repository, so the package.json `exports` and the dist/ declarations are
// what tsc reads), and every other package to this repository's node_modules. tsc then checks them
// all at once: strict, and without skipLibCheck, so a declaration file the package ships that does
// not compile fails too. An error is reported at its line in the Markdown file. `--keep` leaves the
// project in place to look at.
import { spawnSync } from "node:child_process"
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, relative, sep } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")

/** The Markdown files whose snippets are checked, relative to `dir`. */
export const markdownFiles = (dir) => {
  const found = ["README.md", "CONTRIBUTING.md"].filter((name) => existsSync(join(dir, name)))
  const walk = (folder) => {
    if (!existsSync(join(dir, folder))) return
    for (
      const entry of readdirSync(join(dir, folder), { withFileTypes: true }).sort((a, b) =>
        a.name.localeCompare(b.name)
      )
    ) {
      const path = join(folder, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith(".md")) found.push(path)
    }
  }
  walk("docs")
  return found
}

// A fence closes with the same character, at least as many times, and nothing else on the line.
const isClosing = (text, fence) => text.length >= fence.length && text === fence.charAt(0).repeat(text.length)

/** The TypeScript blocks of a Markdown text: `{ line, code }`, `line` being the first line of code (1-based). */
export const extractSnippets = (markdown) => {
  const lines = markdown.split(/\r?\n/)
  const snippets = []
  let open = null
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    if (open === null) {
      const fence = /^( {0,3})(`{3,}|~{3,})\s*([\w-]*)/.exec(line)
      if (fence) {
        open = { fence: fence[2], indent: fence[1].length, lang: fence[3].toLowerCase(), line: i + 2, body: [] }
      }
    } else if (isClosing(line.trim(), open.fence)) {
      if (open.lang === "ts" || open.lang === "typescript") {
        snippets.push({ line: open.line, code: open.body.join("\n") + "\n" })
      }
      open = null
    } else {
      open.body.push(line.slice(Math.min(open.indent, line.length - line.trimStart().length)))
    }
  }
  if (open !== null) throw new Error(`a code block opened at line ${open.line - 1} is never closed`)
  return snippets
}

// Two packages whose types Effect's platform packages use in their declarations but do not bring:
// `ws` (@effect/platform-node-shared) and `pg` (@effect/sql-pg). A user compiling without skipLibCheck
// installs @types/ws and @types/pg; where this repository has not, they are declared here, as loosely
// as those declarations allow. Nothing of this package's own declarations, or Effect's, is exempted.
const untypedModules = {
  ws: `declare module "ws"\n`,
  pg:
    `declare module "pg" {\n  export type Pool = any\n  export type CustomTypesConfig = any\n  const pg: any\n  export default pg\n}\n`
}
const untypedDeclarations = () =>
  Object.entries(untypedModules)
    .filter(([name]) => !existsSync(join(root, "node_modules", "@types", name)))
    .map(([, declaration]) => declaration)
    .join("")

const fail = (message) => {
  console.error(`check-snippets: ${message}`)
  process.exit(1)
}

/** The newest modification time of a file under `folder`. */
const newest = (folder) => {
  let latest = 0
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name)
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs)
  }
  return latest
}

const main = () => {
  const keep = process.argv.includes("--keep")
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))

  // The snippets compile against what `npm run build` made: it must exist and be newer than the source.
  const rootTypes = join(root, pkg.exports?.["."]?.types ?? pkg.types)
  if (!existsSync(rootTypes)) fail(`${relative(root, rootTypes)} is missing: run \`npm run build\` first.`)
  if (newest(join(root, "src")) > statSync(rootTypes).mtimeMs) {
    fail(`${relative(root, rootTypes)} is older than src/: run \`npm run build\` first.`)
  }

  const snippets = []
  const files = markdownFiles(root)
  for (const file of files) {
    for (const snippet of extractSnippets(readFileSync(join(root, file), "utf8"))) {
      snippets.push({ ...snippet, file, name: `snippet${String(snippets.length + 1).padStart(3, "0")}.ts` })
    }
  }
  if (snippets.length === 0) fail(`no TypeScript snippet found in ${files.join(", ")}.`)

  const project = mkdtempSync(join(tmpdir(), "effect-auth-snippets-"))
  try {
    // node_modules: the package itself by its name, and every package this repository installed.
    const modules = join(project, "node_modules")
    mkdirSync(modules)
    for (const entry of readdirSync(join(root, "node_modules"))) {
      if (entry.startsWith(".") || entry === pkg.name) continue
      symlinkSync(join(root, "node_modules", entry), join(modules, entry))
    }
    symlinkSync(root, join(modules, pkg.name), "dir")

    writeFileSync(
      join(project, "package.json"),
      JSON.stringify({ name: "snippets", private: true, type: "module" }, null, 2)
    )
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify(
        {
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            // Effect's own packages are compiled with the DOM library: their declarations name `Storage`
            // and `Transferable`.
            lib: ["ES2022", "DOM"],
            types: ["node"],
            strict: true,
            skipLibCheck: false,
            noEmit: true,
            moduleDetection: "force"
          },
          include: ["snippets/*.ts", "untyped.d.ts"]
        },
        null,
        2
      )
    )
    writeFileSync(join(project, "untyped.d.ts"), untypedDeclarations())
    mkdirSync(join(project, "snippets"))
    for (const snippet of snippets) writeFileSync(join(project, "snippets", snippet.name), snippet.code)

    const tsc = join(root, "node_modules", "typescript", "bin", "tsc")
    const result = spawnSync(process.execPath, [tsc, "-p", join(project, "tsconfig.json"), "--pretty", "false"], {
      cwd: project,
      encoding: "utf8"
    })
    if (result.error) fail(`could not run tsc: ${result.error.message}`)

    const byName = new Map(snippets.map((snippet) => [snippet.name, snippet]))
    // tsc reports `snippets/snippet007.ts(3,5): error TS…`: point at the Markdown line instead.
    const output = `${result.stdout}${result.stderr}`.replace(
      /(?:^|(?<=\n))(?:[^\n]*[\\/])?snippets[\\/](snippet\d+\.ts)\((\d+),(\d+)\)/g,
      (whole, name, line, column) => {
        const snippet = byName.get(name)
        return snippet === undefined ? whole : `${snippet.file}:${snippet.line + Number(line) - 1}:${column} (${name})`
      }
    )
    if (result.status !== 0) {
      console.error(output.replaceAll(project + sep, ""))
      fail(
        `the snippets above do not compile (${snippets.length} checked${keep ? `; project kept in ${project}` : ""}).`
      )
    }
    const perFile = files
      .map((file) => [file, snippets.filter((snippet) => snippet.file === file).length])
      .filter(([, count]) => count > 0)
      .map(([file, count]) => `${file} ${count}`)
    console.log(`check-snippets: ${snippets.length} snippets compile (${perFile.join(", ")}).`)
  } finally {
    if (keep) console.log(`check-snippets: project kept in ${project}`)
    else rmSync(project, { recursive: true, force: true })
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main()
