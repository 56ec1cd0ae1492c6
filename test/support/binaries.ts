/** Just enough of the ELF and PE formats to check a prebuilt addon: its machine, libc and exported symbols. */

const cstring = (bytes: Buffer, at: number) => bytes.toString("latin1", at, bytes.indexOf(0, at))

export interface ElfInfo {
  readonly format: "elf"
  readonly machine: number
  readonly type: number
  readonly needed: ReadonlyArray<string>
  readonly exported: ReadonlyArray<string>
}

/** A 64-bit little-endian ELF shared object: its machine, NEEDED libraries and defined dynamic symbols. */
export const readElf = (bytes: Buffer): ElfInfo => {
  if (bytes.readUInt32BE(0) !== 0x7f454c46) throw new Error("not an ELF file")
  if (bytes[4] !== 2 || bytes[5] !== 1) throw new Error("not a 64-bit little-endian ELF file")
  const type = bytes.readUInt16LE(16)
  const machine = bytes.readUInt16LE(18)
  const shoff = Number(bytes.readBigUInt64LE(0x28))
  const shentsize = bytes.readUInt16LE(0x3a)
  const shnum = bytes.readUInt16LE(0x3c)
  const sections = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize
    return {
      type: bytes.readUInt32LE(at + 4),
      offset: Number(bytes.readBigUInt64LE(at + 0x18)),
      size: Number(bytes.readBigUInt64LE(at + 0x20)),
      link: bytes.readUInt32LE(at + 0x28),
      entsize: Number(bytes.readBigUInt64LE(at + 0x38))
    }
  })
  const dynsym = sections.find((section) => section.type === 11)!
  const dynstr = sections[dynsym.link]!
  const exported: Array<string> = []
  for (let at = dynsym.offset; at < dynsym.offset + dynsym.size; at += dynsym.entsize) {
    const shndx = bytes.readUInt16LE(at + 6)
    const bind = bytes[at + 4]! >> 4
    if (shndx !== 0 && bind === 1) exported.push(cstring(bytes, dynstr.offset + bytes.readUInt32LE(at)))
  }
  const dynamic = sections.find((section) => section.type === 6)!
  const needed: Array<string> = []
  for (let at = dynamic.offset; at < dynamic.offset + dynamic.size; at += 16) {
    if (bytes.readBigUInt64LE(at) === 1n) {
      needed.push(cstring(bytes, dynstr.offset + Number(bytes.readBigUInt64LE(at + 8))))
    }
  }
  return { format: "elf", machine, type, needed, exported }
}

export interface PeInfo {
  readonly format: "pe"
  readonly machine: number
  readonly dll: boolean
  readonly exported: ReadonlyArray<string>
  readonly imports: Readonly<Record<string, ReadonlyArray<string>>>
}

/** A PE32+ DLL: its machine, exported names and imported functions by DLL. */
export const readPe = (bytes: Buffer): PeInfo => {
  if (bytes.toString("latin1", 0, 2) !== "MZ") throw new Error("not a PE file (no MZ header)")
  const pe = bytes.readUInt32LE(0x3c)
  if (bytes.readUInt32BE(pe) !== 0x50450000) throw new Error("not a PE file (no PE signature)")
  const machine = bytes.readUInt16LE(pe + 4)
  const sectionCount = bytes.readUInt16LE(pe + 6)
  const optionalSize = bytes.readUInt16LE(pe + 20)
  const characteristics = bytes.readUInt16LE(pe + 22)
  const optional = pe + 24
  if (bytes.readUInt16LE(optional) !== 0x20b) throw new Error("not PE32+")
  const directory = (index: number) => ({
    rva: bytes.readUInt32LE(optional + 112 + index * 8),
    size: bytes.readUInt32LE(optional + 112 + index * 8 + 4)
  })
  const sections = Array.from({ length: sectionCount }, (_, i) => {
    const at = optional + optionalSize + i * 40
    return { rva: bytes.readUInt32LE(at + 12), size: bytes.readUInt32LE(at + 8), raw: bytes.readUInt32LE(at + 20) }
  })
  const offsetOf = (rva: number) => {
    const section = sections.find((s) => rva >= s.rva && rva < s.rva + s.size)
    if (section === undefined) throw new Error(`RVA ${rva} is in no section`)
    return rva - section.rva + section.raw
  }
  const exported: Array<string> = []
  const exports = directory(0)
  if (exports.size > 0) {
    const at = offsetOf(exports.rva)
    const names = offsetOf(bytes.readUInt32LE(at + 32))
    for (let i = 0; i < bytes.readUInt32LE(at + 24); i++) {
      exported.push(cstring(bytes, offsetOf(bytes.readUInt32LE(names + i * 4))))
    }
  }
  const imports: Record<string, Array<string>> = {}
  const importDir = directory(1)
  for (let at = offsetOf(importDir.rva); bytes.readUInt32LE(at + 12) !== 0; at += 20) {
    const functions: Array<string> = []
    const lookup = bytes.readUInt32LE(at) || bytes.readUInt32LE(at + 16)
    for (let entry = offsetOf(lookup); bytes.readBigUInt64LE(entry) !== 0n; entry += 8) {
      const value = bytes.readBigUInt64LE(entry)
      if ((value >> 63n) === 0n) functions.push(cstring(bytes, offsetOf(Number(value & 0x7fffffffn)) + 2))
    }
    imports[cstring(bytes, offsetOf(bytes.readUInt32LE(at + 12)))] = functions
  }
  return { format: "pe", machine, dll: (characteristics & 0x2000) !== 0, exported, imports }
}
