/**
 * Runs the README's shell examples (issue #10, "A README that runs in order"): extracts them,
 * runs them in one bash process, and matches what they print against what the README shows.
 * Used by test/readme.test.ts; the rules below are the ones the README's authors write to.
 *
 * Which blocks run: the ```sh fenced blocks, in README order. Every other fence (```console for
 * `npm install` / `npm start` / `npm test` and the production set-up, ```ini for the systemd
 * unit, ...) is documentation only and never runs.
 *
 * Inside a ```sh block:
 * - A command group is a run of consecutive lines that are neither blank nor start with `#`. A
 *   multi-line command (`\` continuations, a quoted script, a heredoc) is one group, so it may
 *   hold no blank line and no line starting with `#`.
 * - The `#` lines right after a group (no blank line between) are its expected output: each
 *   loses its `#` and the one space after it; further `#` lines continue the same output. A `#`
 *   line anywhere else (first in a block, after a blank line) is a plain comment.
 * - A `# ...` after a command on the same line is an explanation: bash ignores it, so does this.
 *
 * Matching: expected and actual output (stdout, then stderr) are compared with every whitespace
 * character removed, so line breaks and indentation in the README do not matter; the expected
 * text is cut at each `...` and its pieces must occur in the actual output in that order. It is
 * a "contains" check: `curl -i` output matches `HTTP/1.1 204 No Content` whatever headers follow,
 * and `...` matches any text, none included. A group with expected output passes when it
 * matches; a group without passes when every command in it succeeded (bash's ERR trap, with
 * pipefail, so a failing command inside a group or a pipeline counts).
 *
 * Running: every group, in order, in ONE bash process (shell variables set by one group are seen
 * by the next), with cwd the repository root and `localhost:8080` rewritten to the test engine's
 * address. Each group's stdout, stderr and status go to files in a temp dir; stdin is /dev/null
 * (a heredoc in the group still feeds its own command). The whole run has a deadline: past it,
 * the bash process group is killed and the first group without a status is the one that hung.
 */

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface CommandGroup {
  /** 1-based README line of the group's first line */
  line: number;
  /** the command text as written in the README */
  command: string;
  /** expected output (the `#` lines after the group, without `# `), null when none */
  expected: string | null;
}

export interface GroupResult {
  group: CommandGroup;
  /** the command as run (addresses rewritten) */
  command: string;
  stdout: string;
  stderr: string;
  /** bash's status of the group: the last failing command's status, 0 when none failed; null: never finished */
  status: number | null;
}

/** The ```sh blocks of a markdown text, in order, as command groups. */
export function extractGroups(markdown: string): CommandGroup[] {
  const lines = markdown.split('\n');
  const groups: CommandGroup[] = [];
  let inSh = false;
  let inOtherFence = false;
  let current: { line: number; commands: string[]; expected: string[] | null } | null = null;
  const flush = (): void => {
    if (current !== null) {
      groups.push({ line: current.line, command: current.commands.join('\n'), expected: current.expected === null ? null : current.expected.join('\n') });
    }
    current = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (!inSh && !inOtherFence) {
      if (/^```sh\s*$/.test(line)) inSh = true;
      else if (line.startsWith('```')) inOtherFence = true;
      continue;
    }
    if (inOtherFence) {
      if (/^```\s*$/.test(line)) inOtherFence = false;
      continue;
    }
    if (/^```\s*$/.test(line)) {
      flush();
      inSh = false;
      continue;
    }
    if (line.trim() === '') {
      flush();
    } else if (line.startsWith('#')) {
      // expected output only right after a group (or continuing its expected output)
      if (current !== null) (current.expected ??= []).push(line.replace(/^# ?/, ''));
    } else {
      if (current !== null && current.expected !== null) flush();
      if (current === null) current = { line: i + 1, commands: [], expected: null };
      current.commands.push(line);
    }
  }
  if (inSh) throw new Error('README: a ```sh block is not closed');
  return groups;
}

/** Whether actual output matches expected by the rule in the header (whitespace-free, `...` wildcards, contains). */
export function outputMatches(expected: string, actual: string): boolean {
  const a = actual.replace(/\s+/g, '');
  let from = 0;
  for (const piece of expected.replace(/\s+/g, '').split('...')) {
    if (piece === '') continue;
    const at = a.indexOf(piece, from);
    if (at < 0) return false;
    from = at + piece.length;
  }
  return true;
}

/** The bash script that runs the groups, each into out/err/rc files of `dir`. */
function script(commands: string[], dir: string): string {
  const parts = ['set -o pipefail'];
  commands.forEach((c, i) => {
    const f = path.join(dir, String(i));
    parts.push(
      '__readme_err=0',
      "trap '__readme_err=$?' ERR",
      '{',
      c,
      `} >'${f}.out' 2>'${f}.err' </dev/null`,
      'trap - ERR',
      `echo "$__readme_err" >'${f}.rc'`,
    );
  });
  return parts.join('\n') + '\n';
}

/**
 * Runs the groups in order in one bash process (cwd: `cwd`), `localhost:8080` rewritten to
 * `address` (host:port). Resolves with one result per group once bash exits or `deadlineMs` passes.
 */
export async function runGroups(groups: CommandGroup[], opts: { cwd: string; address: string; deadlineMs: number }): Promise<{ results: GroupResult[]; timedOut: boolean; bashStderr: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-readme-'));
  const commands = groups.map((g) => g.command.split('localhost:8080').join(opts.address));
  const scriptPath = path.join(dir, 'readme.sh');
  fs.writeFileSync(scriptPath, script(commands, dir));
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}` };
  delete env.NODE_OPTIONS; // tap's loader hooks are no part of a reader's shell
  // a process group of its own, so that a hung command is killed with bash
  const bash = spawn('bash', [scriptPath], { cwd: opts.cwd, env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let bashStderr = '';
  bash.stderr!.on('data', (c: Buffer) => { bashStderr += c.toString('utf8'); });
  let timedOut = false;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      timedOut = true;
      try { process.kill(-bash.pid!, 'SIGKILL'); } catch { /* already gone */ }
    }, opts.deadlineMs);
    bash.once('exit', () => { clearTimeout(timer); resolve(); });
  });
  const read = (f: string): string => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
  const results = groups.map((group, i) => {
    const f = path.join(dir, String(i));
    const rc = read(`${f}.rc`).trim();
    return { group, command: commands[i], stdout: read(`${f}.out`), stderr: read(`${f}.err`), status: rc === '' ? null : Number(rc) };
  });
  fs.rmSync(dir, { recursive: true, force: true });
  return { results, timedOut, bashStderr };
}
