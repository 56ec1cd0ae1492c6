import { Config, Schema, SchemaIssue } from "effect"

/** The `Config.ConfigError` that refuses the setting at `path` (a variable's name, or a path in the options). */
export const refuse = (path: string | ReadonlyArray<string>, message: string): Config.ConfigError =>
  new Config.ConfigError(
    new Schema.SchemaError(
      new SchemaIssue.Pointer(typeof path === "string" ? [path] : path, new SchemaIssue.InvalidValue({ message }))
    )
  )
