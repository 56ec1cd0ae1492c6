// Every console line of the in-process tests goes to the secrets audit too.
import { record } from "./audit.js"

for (const level of ["log", "info", "warn", "error", "debug"] as const) {
  const original = console[level].bind(console)
  console[level] = (...args: Array<unknown>) => {
    record(`console.${level}`, args.map((arg) => (typeof arg === "string" ? arg : String(arg))).join(" "))
    original(...args)
  }
}
