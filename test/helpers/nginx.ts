// A real nginx for tests and benchmarks: own config, prefix, pid file and logs in a temp dir,
// listening on 127.0.0.1 on a free port, serving `root` as a static site (sendfile, keep-alive).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export const NGINX = '/usr/sbin/nginx'

export interface Nginx {
  url: string
  port: number
  accessLog: string
  /** the access log's request lines so far ("GET /path HTTP/1.1") */
  requests: () => string[]
  stop: () => Promise<void>
}

/** A free TCP port on 127.0.0.1 (closed again before returning). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => { resolve(port) })
    })
  })
}

async function waitForPort (port: number, child: ChildProcess, errorLog: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode != null) throw new Error(`nginx exited with ${child.exitCode}: ${existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : ''}`)
    const ok = await new Promise<boolean>(resolve => {
      const c = connect(port, '127.0.0.1', () => { c.destroy(); resolve(true) })
      c.once('error', () => { resolve(false) })
    })
    if (ok) return
    await sleep(25)
  }
  throw new Error(`nginx did not listen on ${port}`)
}

/**
 * Writes `dir`/nginx.conf for a static server of `root` on `addr`:`port`, with its pid, logs and
 * temp files under `dir` (nothing outside it), and returns the config's path.
 */
export function writeNginxConf (dir: string, root: string, addr: string, port: number): string {
  mkdirSync(join(dir, 'logs'), { recursive: true })
  mkdirSync(join(dir, 'tmp'), { recursive: true })
  const conf = join(dir, 'nginx.conf')
  const asRoot = process.getuid?.() === 0
  writeFileSync(conf, `
${asRoot ? 'user root;' : ''}
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log ${join(dir, 'logs', 'access.log')};
  client_body_temp_path ${join(dir, 'tmp', 'body')};
  proxy_temp_path ${join(dir, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(dir, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(dir, 'tmp', 'scgi')};
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {
    listen ${addr}:${port};
    root ${root};
  }
}
`)
  return conf
}

/** Starts nginx serving `root` from `dir` (its prefix: config, pid, logs, temp files). */
export async function startNginx (root: string, dir: string): Promise<Nginx> {
  const port = await freePort()
  const conf = writeNginxConf(dir, root, '127.0.0.1', port)
  const errorLog = join(dir, 'logs', 'error.log')
  const accessLog = join(dir, 'logs', 'access.log')
  const child = spawn(NGINX, ['-p', dir, '-c', conf, '-e', errorLog, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  try {
    await waitForPort(port, child, errorLog)
  } catch (err: any) {
    child.kill('SIGKILL')
    err.message += ` ${stderr}`
    throw err
  }
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    accessLog,
    requests: () => existsSync(accessLog)
      ? readFileSync(accessLog, 'utf8').split('\n').map(l => /"([A-Z]+ [^"]*)"/.exec(l)?.[1]).filter((l): l is string => l != null)
      : [],
    stop: async () => {
      if (child.exitCode != null) return
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGQUIT')
      const done = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)])
      if (!done) { child.kill('SIGKILL'); await exited }
    }
  }
}
