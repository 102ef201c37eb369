// caswarm serve: publish a chunk store (and its indexes) over HTTP at the paths a static server
// uses, with a request log, Prometheus metrics at /metrics, and uploads when given a token.
import type { Command } from 'commander'
import { parseDigest } from '../../protocol/chunk-id.ts'
import { InvalidArgumentError } from '../../protocol/errors.ts'
import type { CommandContext } from '../context.ts'

export interface ServeCliOptions {
  store: string
  indexDir?: string
  listen: string
  token?: string
  digest?: string
  log: boolean
}

/** 'HOST:PORT', ':PORT', 'PORT' or '[v6]:PORT'. */
export function parseListen (value: string): { host: string, port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value)
  const port = m != null ? Number(m[3]) : NaN
  if (m == null || !Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`--listen wants HOST:PORT, not ${value}`)
  const host = m[1] ?? (m[2] !== '' ? m[2]! : '127.0.0.1')
  return { host, port }
}

export function register (program: Command, ctx: CommandContext): void {
  program.command('serve')
    .summary('serve a chunk store and its indexes over HTTP')
    .description('Serve STORE\'s chunks at /<store dir name>/<4hex>/<id>.cacnk (and /<4hex>/<id>.cacnk) and the .caibx/.caidx files under --index-dir at their relative paths: the URLs a static server would give the same directories, so `caswarm extract` and `casync extract` read them as any HTTP store. With a token (--token or env CASWARM_TOKEN), PUT uploads chunks, verified before they are kept, and indexes; `caswarm make --store=http://…` uses this. One request log line per request goes to stdout; Prometheus metrics are at /metrics.')
    .requiredOption('-s, --store <dir>', 'the .castr directory to serve (created if missing)')
    .option('--index-dir <dir>', 'directory whose .caibx/.caidx files are served and uploaded into')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
    .option('--token <token>', 'allow PUT uploads with `Authorization: Bearer <token>` (default: env CASWARM_TOKEN)')
    .option('--digest <digest>', 'accept uploaded chunks of this digest only (sha256 or sha512-256; default: either)')
    .option('--no-log', 'no request log')
    .addHelpText('after', `
Examples:
  caswarm serve --store=/srv/images/default.castr --index-dir=/srv/images --listen=0.0.0.0:8080
    then: caswarm extract http://host:8080/v2.caibx v2.img   (store: http://host:8080/default.castr)
  CASWARM_TOKEN=s3cret caswarm serve --store=/srv/default.castr --index-dir=/srv --listen=127.0.0.1:8080
    then: CASWARM_TOKEN=s3cret caswarm make --store=http://127.0.0.1:8080/default.castr http://127.0.0.1:8080/v3.caibx v3.img`)
    .action(async (opts: ServeCliOptions) => {
      const { host, port } = parseListen(opts.listen)
      const token = opts.token ?? process.env.CASWARM_TOKEN
      const { ChunkServer, formatLogEntry } = await import('../../node/http/server.ts') // (prom-client: not for --help)
      const server = new ChunkServer({
        store: opts.store,
        indexDir: opts.indexDir,
        token,
        digests: opts.digest != null ? [parseDigest(opts.digest)] : undefined,
        onRequest: opts.log ? (e) => { ctx.stdout.write(formatLogEntry(e) + '\n') } : undefined
      })
      const url = await server.listen(port, host)
      ctx.stderr.write(`caswarm serve: listening on ${url} (store ${server.storeUrl}${opts.indexDir != null ? `, indexes from ${opts.indexDir}` : ''}${token != null && token !== '' ? ', uploads allowed' : ''})\n`)
      if (!ctx.signal.aborted) {
        await new Promise<void>(resolve => { ctx.signal.addEventListener('abort', () => { resolve() }, { once: true }) })
      }
      await server.close()
    })
}
