import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { ERRORS } from '../protocol';
import { SETTINGS } from '../engine/config';

const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');

t.test('every error code is documented in the README', async (t) => {
  for (const code of Object.keys(ERRORS)) t.match(readme, `| \`${code}\` |`, code);
});

t.test('every setting is in the README configuration table', async (t) => {
  for (const s of SETTINGS) t.match(readme, `| \`${s.flag}\` | \`${s.env}\` |`, s.flag);
});
