// run.mjs - run one browser test file under `node --test`, or report it skipped.
// ctest treats exit 77 as skipped (SKIP_RETURN_CODE). Without Debian's chromium (or npm
// playwright-core) a developer's run skips the browser tests; CI sets
// RTLOG_REQUIRE_BROWSER=1 (.ci/run), which turns the skip into a failure.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { join } from 'node:path';

const file = process.argv[2];
const chromium = process.env.RTLOG_CHROMIUM || '/usr/bin/chromium';
const clients = process.env.RTLOG_CLIENTS_DIR || '';
const missing = [];
if (!fs.existsSync(chromium)) missing.push(`${chromium} (apt-get install chromium; tools/deps.sh)`);
if (!fs.existsSync(join(clients, 'node_modules', 'playwright-core')))
  missing.push(`npm playwright-core in ${clients} (npm ci there)`);
if (missing.length) {
  const why = 'browser test needs ' + missing.join(' and ');
  if (process.env.RTLOG_REQUIRE_BROWSER === '1') {
    console.error('FAIL: ' + why + ' (RTLOG_REQUIRE_BROWSER=1)');
    process.exit(1);
  }
  console.log('SKIP: ' + why);
  process.exit(77);
}
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', file], { stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
