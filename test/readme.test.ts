/**
 * The README is checked against the code and run against the engine (issue #10):
 * - every error code and every setting is in its tables;
 * - every ```sh block runs, top to bottom, in one bash process against a real engine on a fresh
 *   data dir, and each command prints what the README shows under it. The extraction and
 *   matching rules are in test/helpers/readme-runner.ts: in short, a command group is a run of
 *   non-blank, non-`#` lines, the `#` lines right after it are its expected output, matched
 *   whitespace-insensitively as "contains", with `...` matching anything; a group without
 *   expected output must succeed. Blocks that must not run here (npm install/start/test,
 *   production set-up) are fenced ```console instead of ```sh.
 */

import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ERRORS } from '../protocol';
import { SETTINGS } from '../engine/config';
import { startEngine } from './helpers/engine';
import { extractGroups, outputMatches, runGroups } from './helpers/readme-runner';

const ROOT = path.join(__dirname, '..', '..');
const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
/** the whole README run; it takes ~10-15 s (one wait for a periodic report is most of it) */
const RUN_DEADLINE_MS = 45_000;

t.test('every error code is documented in the README', async (t) => {
  for (const code of Object.keys(ERRORS)) t.match(readme, `| \`${code}\` |`, code);
});

t.test('every setting is in the README configuration table', async (t) => {
  for (const s of SETTINGS) t.match(readme, `| \`${s.flag}\` | \`${s.env}\` |`, s.flag);
});

t.test('the runner extracts groups and matches output by its rules', async (t) => {
  const groups = extractGroups([
    '```console', '$ npm start', '```',
    '```sh', '# a comment, not output', 'A=1   # an explanation', 'echo "$A" |', '  cat', '# 1', '#  and more',
    '', '# after a blank line: a comment', 'true', '```',
  ].join('\n'));
  t.same(groups, [
    { line: 6, command: 'A=1   # an explanation\necho "$A" |\n  cat', expected: '1\n and more' },
    { line: 13, command: 'true', expected: null },
  ]);
  t.ok(outputMatches('HTTP/1.1 204 No Content', 'HTTP/1.1 204 No Content\r\nDate: x\r\n'));
  t.ok(outputMatches('{"a":...,"b":2,\n  "c":[...]}', '{"a":17, "b":2, "c":[]}'));
  t.notOk(outputMatches('{"a":...,"b":2}', '{"a":17,"b":3}'));
  t.notOk(outputMatches('"b":2...."a":1', '{"a":1,"b":2}'), 'pieces in order');
});

t.test('the README examples run in order and print what it shows', async (t) => {
  const groups = extractGroups(readme);
  // a floor, so that a broken extraction cannot pass by running nothing
  t.ok(groups.length >= 20, `${groups.length} command groups found in the README's sh blocks`);
  // what the examples call besides node (GNU date: `date -d @S`)
  const tools = spawnSync('bash', ['-c', 'command -v curl gzip && date -u -d @0 +%F'], { encoding: 'utf8' });
  if (tools.status !== 0) {
    t.fail(`the README's examples need bash, curl, gzip and GNU date: ${tools.stdout}${tools.stderr}`);
    return;
  }
  const engine = await startEngine();
  t.teardown(() => engine.stop());
  const started = Date.now();
  const { results, timedOut, bashStderr } = await runGroups(groups, { cwd: ROOT, address: `127.0.0.1:${engine.port}`, deadlineMs: RUN_DEADLINE_MS });
  t.comment(`${groups.length} command groups ran in ${Date.now() - started} ms`);
  if (timedOut) t.fail(`the README run passed ${RUN_DEADLINE_MS} ms and was killed`);
  if (bashStderr !== '') t.comment(`bash: ${bashStderr}`);
  let failures = 0;
  for (const r of results) {
    const name = `README.md:${r.group.line}: ${r.group.command.split('\n')[0]}`;
    let problem: string | null = null;
    if (r.status === null) problem = 'did not finish (a command hung, or an earlier one ended the shell)';
    else if (r.group.expected !== null && !outputMatches(r.group.expected, r.stdout + r.stderr)) problem = 'the output is not the one shown';
    else if (r.group.expected === null && r.status !== 0) problem = `a command failed (status ${r.status})`;
    if (problem === null) {
      t.pass(name);
      continue;
    }
    failures++;
    t.fail(name, {
      diagnostic: true,
      problem,
      command: r.command,
      expected: r.group.expected ?? '(no output shown; must succeed)',
      status: r.status,
      stdout: r.stdout,
      stderr: r.stderr,
    });
  }
  if (failures > 0) t.comment(`engine log (last 20 lines):\n${engine.logs.slice(-20).join('\n')}`);
});
