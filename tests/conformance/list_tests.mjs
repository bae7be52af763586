// Print the suite's tests as JSON, one object each: what run.py needs to judge a result.
// usage: node list_tests.mjs <the http-cache-tests package directory>
import path from 'path'
import { pathToFileURL } from 'url'

const suiteDir = path.resolve(process.argv[2])
const load = async (file) => (await import(pathToFileURL(path.join(suiteDir, file)))).default
// The CLI runs the surrogate-control suite too (cli.mjs), so it is listed here as well.
const suites = [...await load('tests/index.mjs'), await load('tests/surrogate-control.mjs')]
const tests = suites.flatMap(suite => suite.tests
  .filter(test => test.browser_only !== true)
  .map(test => ({
    id: test.id,
    name: test.name,
    section: suite.name,
    kind: test.kind || 'required',
    depends_on: test.depends_on || []
  })))
console.log(JSON.stringify(tests, null, 1))
