import '../helpers/setup.ts'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { makeIndex } from '../../node/make.ts'
import { writeIndexFile } from '../../node/index-io.ts'
import { LocalStore } from '../../node/store/local-store.ts'
import { pseudoRandom } from '../helpers/fixtures.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { needs, run } from '../helpers/tools.ts'

const CLI = fileURLToPath(new URL('../../bin/caswarm.js', import.meta.url))

function cli (args: string[], env: Record<string, string | undefined>): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, CASWARM_PEERS: 'off', ...env } }, (err: any, stdout, stderr) => {
      resolve({ code: err == null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

// A store and an index served over TLS by a server with a certificate made for the test
// (openssl), trusted through NODE_EXTRA_CA_CERTS as a user would trust a private CA.
describe('HTTPS origin', { skip: needs('openssl') }, () => {
  const tmp = tempDir('caswarm-https-')
  const data = pseudoRandom(1_200_000, 91)
  let server: Server
  let base: string
  const cert = join(tmp.path, 'cert.pem')

  before(async () => {
    const key = join(tmp.path, 'key.pem')
    run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert])
    const www = join(tmp.path, 'www')
    const index = (await makeIndex((async function * () { yield data })(), new LocalStore(join(www, 'default.castr')))).index
    await writeIndexFile(join(www, 'blob.caibx'), index)
    server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      try {
        const body = readFileSync(join(www, decodeURIComponent(req.url!.split('?')[0]!)))
        res.writeHead(200, { 'content-length': body.byteLength }).end(body)
      } catch {
        res.writeHead(404).end()
      }
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
    tmp.cleanup()
  })

  it('extract of an https:// index (store URL derived from it) gives the exact bytes', async () => {
    const out = join(tmp.path, 'out.img')
    const r = await cli(['extract', '--no-progress', '--json', `${base}blob.caibx`, out], { NODE_EXTRA_CA_CERTS: cert })
    assert.equal(r.code, 0, r.stderr)
    assert.ok(readFileSync(out).equals(data))
    assert.ok(JSON.parse(r.stdout).sources[`${base}default.castr`].chunks > 0, r.stdout)
  })

  it('a certificate the client does not trust fails with a network error naming the URL, and no output', async () => {
    const out = join(tmp.path, 'untrusted.img')
    const r = await cli(['extract', '--no-progress', `${base}blob.caibx`, out], { NODE_EXTRA_CA_CERTS: undefined })
    assert.equal(r.code, 6, r.stderr)
    assert.ok(r.stderr.includes(`${base}blob.caibx`), r.stderr)
    assert.match(r.stderr, /certificate/i)
    assert.match(r.stderr, /NODE_EXTRA_CA_CERTS/)
    assert.equal(existsSync(out), false)
    assert.deepEqual(readdirSync(tmp.path).filter(f => f.includes('untrusted')), [])
  })
})
