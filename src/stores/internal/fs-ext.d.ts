// The part of fs-ext 2.1.1 (a native binding, no types of its own) that the lock uses.
declare module "fs-ext" {
  /** flock(2) on `fd`; "exnb" is LOCK_EX | LOCK_NB, "un" LOCK_UN. Throws an errno error (EAGAIN when held). */
  export function flockSync(fd: number, flags: "ex" | "exnb" | "sh" | "shnb" | "un" | number): void
  export const constants: {
    readonly LOCK_SH: number
    readonly LOCK_EX: number
    readonly LOCK_NB: number
    readonly LOCK_UN: number
  }
}
