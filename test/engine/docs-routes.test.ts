import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { startEngine } from '../helpers/engine';
import { swaggerUiDir } from '../../engine/docs-routes';

const CONTENT_TYPES: Record<string, RegExp> = { '.css': /^text\/css/, '.js': /^text\/javascript/, '.png': /^image\/png$/ };

t.test('GET /docs over the real server: a page that works offline', async (t) => {
  const engine = await startEngine(['--shards', '1']);
  t.teardown(() => engine.stop());
  const page = await fetch(`${engine.url}/docs`);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  const html = await page.text();
  t.match(html, '<div id="swagger-ui"></div>');

  const refs = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
  t.ok(refs.length >= 3, `the page loads ${refs.join(', ')}`);

  t.test('everything the page loads comes from Sluice itself', async (t) => {
    for (const ref of refs) {
      t.match(ref, /^\/docs\/[A-Za-z0-9_.-]+$/, `${ref}: a path on this server, no other host`);
      const r = await fetch(engine.url + ref);
      t.equal(r.status, 200, ref);
      t.match(r.headers.get('content-type'), CONTENT_TYPES[path.extname(ref)], ref);
      const body = Buffer.from(await r.arrayBuffer());
      const dist = path.join(swaggerUiDir(), path.basename(ref));
      if (fs.existsSync(dist)) t.ok(body.equals(fs.readFileSync(dist)), `${ref}: the swagger-ui-dist file`);
    }
  });

  t.test('the page reads /openapi.json and calls no online validator', async (t) => {
    const init = await (await fetch(`${engine.url}/docs/docs-init.js`)).text();
    t.match(init, "url: '/openapi.json'");
    t.match(init, 'validatorUrl: null');
    t.notMatch(init, /https?:\/\//);
    t.equal((await fetch(`${engine.url}/openapi.json`)).status, 200);
  });

  t.test('an unknown asset is 404 with an error body', async (t) => {
    for (const name of ['nope.js', '..%2Fpackage.json', 'index.html']) {
      const r = await fetch(`${engine.url}/docs/${name}`);
      t.equal(r.status, 404, name);
      t.equal(((await r.json()) as { code: string }).code, 'SLUICE_E_NOT_FOUND', name);
    }
  });
});
