// Started before anything else the CLI loads (cli/index.ts imports this module first): make and
// extract of a chunked index (.caibx/.caidx) hash and decompress on worker threads, which take
// ~0.2 s to load their modules. Starting them now overlaps that with the main thread's own
// start-up (commander, the command's modules, the index).
export function warmWorkers (argv: string[]): void {
  const [verb, ...rest] = argv.slice(2)
  if (verb !== 'make' && verb !== 'extract') return
  if (rest.some(a => a === '--help' || a === '-h') || !rest.some(a => !a.startsWith('-') && /\.ca(ibx|idx)$/.test(a))) return
  // over HTTP, the main thread fetches the index and each worker its chunks: load the HTTP
  // client (~0.1 s) everywhere now rather than when the first request is due
  const http = verb === 'extract' && rest.some(a => /^(--[a-z-]+=)?https?:\/\//.test(a))
  // the threads first, then undici here (its loading would otherwise delay them)
  void import('../node/workers/pool.ts').then(m => {
    m.sharedPool().warm({ http })
    if (http) void import('../node/http/undici-core.ts').then(u => u.loadUndici()).catch(() => {})
  }, () => {})
}

warmWorkers(process.argv)
