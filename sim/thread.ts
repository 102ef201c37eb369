// The body of `runScenarioInThread` (sim/run.ts): runs one scenario in a worker thread and posts
// its result back. The worker exists for its heap: a simulated fleet allocates a short-lived
// object or two per event (a plan, a request) by the million, and a young generation larger
// than V8's default lets them die there instead of being copied into the old one.
import { parentPort, workerData } from 'node:worker_threads'
import { runScenario, type ThreadJob } from './run.ts'
import { scenarios } from './scenarios/index.ts'

const job = workerData as ThreadJob
try {
  const scenario = scenarios[job.scenario]
  if (scenario == null) throw new Error(`unknown scenario ${JSON.stringify(job.scenario)}`)
  parentPort!.postMessage({ ok: true, result: runScenario(scenario, job.options) })
} catch (err: any) {
  parentPort!.postMessage({ ok: false, message: String(err?.message ?? err), code: err?.code })
}
