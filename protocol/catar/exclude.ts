// .caexclude files (spec §4.8): gitignore-like patterns, each path component matched with
// fnmatch(FNM_PERIOD). Names are handled as 'latin1' strings so every byte maps to one char.

export interface ExcludePattern {
  /** the pattern's components (one for unanchored patterns) */
  parts: string[]
  anchored: boolean
  negative: boolean
  dirOnly: boolean
  /** depth of the directory holding the .caexclude (anchored patterns count from there) */
  depth: number
}

/** Parses a .caexclude file found in the directory at `depth` (root = 0). */
export function parseExcludeFile (text: string, depth: number): ExcludePattern[] {
  const out: ExcludePattern[] = []
  for (const raw of text.split('\n')) {
    let line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    let negative = false
    if (line.startsWith('!')) { negative = true; line = line.slice(1) }
    let dirOnly = false
    while (line.endsWith('/')) { dirOnly = true; line = line.slice(0, -1) }
    const anchored = line.includes('/')
    line = line.replace(/^\/+/, '')
    if (line === '') continue
    out.push({ parts: anchored ? line.split('/').filter(p => p !== '') : [line], anchored, negative, dirOnly, depth })
  }
  return out
}

/**
 * Whether the entry at `path` (components from the archive root, latin1) is excluded by the
 * active patterns. `isDir` says whether it is a directory.
 */
export function isExcluded (patterns: ExcludePattern[], path: string[], isDir: boolean): boolean {
  let positive = false
  for (const p of patterns) {
    if (p.dirOnly && !isDir) continue
    let hit: boolean
    if (p.anchored) {
      const rel = path.slice(p.depth)
      hit = rel.length === p.parts.length && p.parts.every((part, i) => fnmatch(part, rel[i]!))
    } else {
      hit = fnmatch(p.parts[0]!, path[path.length - 1]!)
    }
    if (!hit) continue
    if (p.negative) return false
    positive = true
  }
  return positive
}

/** POSIX fnmatch() of one component with FNM_PERIOD (a leading '.' only matches a literal '.'). */
export function fnmatch (pattern: string, name: string): boolean {
  return match(pattern, 0, name, 0)
}

function match (p: string, pi: number, s: string, si: number): boolean {
  while (pi < p.length) {
    const c = p[pi]!
    if (c === '*') {
      while (p[pi] === '*') pi++
      if (si === 0 && s[0] === '.') return false
      if (pi === p.length) return true
      for (let k = si; k <= s.length; k++) if (match(p, pi, s, k)) return true
      return false
    }
    if (si >= s.length) return false
    if (c === '?') {
      if (si === 0 && s[0] === '.') return false
      pi++; si++
      continue
    }
    if (c === '[') {
      const r = bracket(p, pi, s[si]!)
      if (r == null) { // no closing bracket: a literal '['
        if (s[si] !== '[') return false
        pi++; si++
        continue
      }
      if (si === 0 && s[0] === '.') return false
      if (!r.matched) return false
      pi = r.next; si++
      continue
    }
    if (c === '\\' && pi + 1 < p.length) {
      if (s[si] !== p[pi + 1]) return false
      pi += 2; si++
      continue
    }
    if (s[si] !== c) return false
    pi++; si++
  }
  return si === s.length
}

function bracket (p: string, start: number, ch: string): { matched: boolean, next: number } | undefined {
  let i = start + 1
  let negate = false
  if (p[i] === '!' || p[i] === '^') { negate = true; i++ }
  let matched = false
  let first = true
  while (i < p.length && (first || p[i] !== ']')) {
    first = false
    let lo = p[i]!
    if (lo === '\\' && i + 1 < p.length) { i++; lo = p[i]! }
    i++
    if (p[i] === '-' && i + 1 < p.length && p[i + 1] !== ']') {
      let hi = p[i + 1]!
      i += 2
      if (hi === '\\' && i < p.length) { hi = p[i]!; i++ }
      if (ch >= lo && ch <= hi) matched = true
    } else if (ch === lo) matched = true
  }
  if (i >= p.length) return undefined
  return { matched: matched !== negate, next: i + 1 }
}
