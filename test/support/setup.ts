// Every console line of the in-process tests goes to the secrets audit too. Test files that share
// a worker (isolate: false) run this once each: the console is wrapped only once.
import { record } from "./audit.js"

const wrapped = Symbol.for("effect-auth-manager/test/console-audited")
const marks = globalThis as { [wrapped]?: boolean }

if (marks[wrapped] !== true) {
  marks[wrapped] = true
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    const original = console[level].bind(console)
    console[level] = (...args: Array<unknown>) => {
      record(`console.${level}`, args.map((arg) => (typeof arg === "string" ? arg : String(arg))).join(" "))
      original(...args)
    }
  }
}
