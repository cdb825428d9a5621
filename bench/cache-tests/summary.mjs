// Summarize a cache-tests results file with the suite's own rules.
// usage: node summary.mjs <suite dir> <results.json>
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'
const [suiteDir, resultsFile] = process.argv.slice(2)
const suites = (await import(pathToFileURL(path.join(suiteDir, 'tests/index.mjs')))).default
const { determineTestResult, resultTypes } = await import(pathToFileURL(path.join(suiteDir, 'test-engine/lib/results.mjs')))
const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'))
const count = {}
const failing = []
for (const suite of suites) {
  for (const test of suite.tests) {
    const kind = test.kind || 'required'
    const r = determineTestResult(suites, test.id, results, process.env.DEPS !== "0")
    const name = Object.keys(resultTypes).find(k => resultTypes[k] === r)
    count[kind] = count[kind] || { total: 0 }
    count[kind].total++
    count[kind][name] = (count[kind][name] || 0) + 1
    if (!['pass', 'yes', 'no'].includes(name)) failing.push(`${kind}\t${name}\t${test.id}\t${test.name}`)
  }
}
console.log(JSON.stringify(count))
for (const f of failing) console.log(f)
