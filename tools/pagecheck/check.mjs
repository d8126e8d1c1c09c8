// Checks every page listed in tests/pages.json against a running portal:
//  - status code as listed;
//  - the HTML as served, with the Nu HTML Checker (vnu.jar, machine's Java);
//  - accessibility with axe-core (WCAG 2.0/2.1/2.2 A and AA) in headless
//    Chromium, after the page and its styles have loaded;
//  - no request to any other host (the portal makes no third-party requests);
//  - page weight: document plus its assets, gzip-compressed, against the
//    page's optional `max_kib` budget.
// Any failure exits non-zero.
//
// Usage: node check.mjs --base http://127.0.0.1:8080 --pages ../../tests/pages.json --out DIR
//  - layout: at 360 px (a small phone) the page must not scroll sideways and
//    no text may overflow its box; at 1280 px (a laptop) the header must
//    stay on one line. Every page is screenshotted at both widths into DIR
//    (NAME-360.png, NAME-1280.png), full page.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

// Recovery codes of the staff account run.sh made (each works once).
const staffCodes = (process.env.PAGECHECK_STAFF_CODES || '').split(' ').filter(Boolean);

const require = createRequire(import.meta.url);

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const base = arg('base', 'http://127.0.0.1:8080').replace(/\/$/, '');
const pagesFile = arg('pages', new URL('../../tests/pages.json', import.meta.url).pathname);
const outDir = arg('out', new URL('./out', import.meta.url).pathname);
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const vnuJar = String(require('vnu-jar'));
const baseOrigin = new URL(base).origin;

const pages = JSON.parse(readFileSync(pagesFile, 'utf8')).pages;
mkdirSync(outDir, { recursive: true });

const failures = [];
const fail = (page, message) => failures.push(`${page.name}: ${message}`);

async function fillForm(tab, fields) {
  for (const [field, value] of Object.entries(fields)) {
    const selector = `[name="${field}"]`;
    const type = await tab.getAttribute(selector, 'type');
    if (type === 'checkbox') {
      if (value) await tab.check(selector);
    } else if (type === 'file') {
      await tab.setInputFiles(selector, join(new URL('../../', import.meta.url).pathname, value));
    } else {
      await tab.fill(selector, String(value));
    }
  }
}

async function mailLink(to, path) {
  const log = process.env.PAGECHECK_SERVER_LOG;
  if (!log) throw new Error('mail_link needs PAGECHECK_SERVER_LOG (run.sh sets it)');
  for (let i = 0; i < 100; i++) {
    const text = readFileSync(log, 'utf8');
    const at = text.lastIndexOf(`to=${to} `);
    if (at >= 0) {
      const start = text.indexOf(path, at);
      if (start >= 0) return text.slice(start).split(/\s/)[0].replace(/^https?:\/\/[^/]+/, '');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no mail to ${to} with ${path} in the server log`);
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

const htmlFiles = [];
for (const page of pages) {
  // A fresh context per page: no cookie (e.g. the language) leaks between pages.
  // bypassCSP lets axe run; the portal's own CSP forbids injected scripts.
  const context = await browser.newContext({ bypassCSP: true, viewport: { width: 360, height: 800 } });
  const tab = await context.newPage();
  const outside = [];
  const bodies = [];
  tab.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith('data:') && new URL(url).origin !== baseOrigin) outside.push(url);
  });
  tab.on('response', async (response) => {
    try {
      bodies.push({ url: response.url(), body: await response.body() });
    } catch {
      // Redirects and aborted requests have no body.
    }
  });

  if (page.staff) {
    // Staff pages: sign in first with the account run.sh created.
    await tab.goto(base + '/staff/login', { waitUntil: 'load' });
    await tab.fill('[name="email"]', process.env.PAGECHECK_STAFF_EMAIL || '');
    await tab.fill('[name="password"]', process.env.PAGECHECK_STAFF_PASSWORD || '');
    await Promise.all([tab.waitForNavigation({ waitUntil: 'load' }), tab.click('form [type="submit"]')]);
    // The second factor: one of the account's recovery codes per page.
    await tab.fill('[name="code"]', staffCodes.shift() || '');
    await Promise.all([tab.waitForNavigation({ waitUntil: 'load' }), tab.click('form [type="submit"]')]);
    bodies.length = 0;
  }
  // A page is reached by steps: `path` (+ optional `form`, `follow`) is
  // shorthand for the usual ones; `steps` spells them out.
  const steps = page.steps || [
    { goto: page.path },
    ...(page.form ? [{ form: page.form }] : []),
    ...(page.follow ? [{ follow: page.follow }] : []),
  ];
  let response = null;
  for (const step of steps) {
    if (step.goto) {
      response = await tab.goto(base + step.goto, { waitUntil: 'load' });
    } else if (step.form) {
      await fillForm(tab, step.form.fields || {});
      const [navigation] = await Promise.all([
        tab.waitForNavigation({ waitUntil: 'load' }),
        tab.click(`${step.form.selector || 'form'} [type="submit"]`),
      ]);
      response = navigation;
    } else if (step.follow) {
      const [navigation] = await Promise.all([
        tab.waitForNavigation({ waitUntil: 'load' }),
        tab.click(step.follow),
      ]);
      response = navigation;
    } else if (step.mail_link) {
      // The portal runs without a mail provider, so it prints each mail
      // (with its link) to its log: open the newest link to this address.
      const path = await mailLink(step.mail_link.to, step.mail_link.path);
      response = await tab.goto(base + path, { waitUntil: 'load' });
    }
  }
  if (!response) {
    fail(page, 'no response');
    await context.close();
    continue;
  }
  if (response.status() !== page.status) {
    fail(page, `status ${response.status()}, expected ${page.status}`);
  }
  const html = await response.text();
  const file = join(outDir, `${page.name}.html`);
  writeFileSync(file, html);
  htmlFiles.push({ page, file });

  // Layout at 360 px: no sideways scrolling, no text outside its box
  // (inside a box that scrolls on purpose, such as a wide table's, is fine).
  const layout = await tab.evaluate(() => {
    const problems = [];
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth) {
      problems.push(`the page scrolls sideways (${root.scrollWidth} px wide)`);
    }
    const scrolls = (el) => {
      for (let e = el.parentElement; e; e = e.parentElement) {
        const o = getComputedStyle(e).overflowX;
        if (o === 'auto' || o === 'scroll') return true;
      }
      return false;
    };
    for (const el of document.body.querySelectorAll('h1,h2,h3,p,li,dt,dd,label,legend,a,button,td,th,strong,code,.hint')) {
      const style = getComputedStyle(el);
      if (style.display === 'inline' || style.display === 'none' || el.closest('.visually-hidden')) continue;
      if (el.scrollWidth > el.clientWidth + 1 && !scrolls(el)) {
        const text = (el.textContent || '').trim().slice(0, 40);
        problems.push(`<${el.tagName.toLowerCase()}> "${text}" overflows its box by ${el.scrollWidth - el.clientWidth} px`);
      }
    }
    return problems;
  });
  for (const problem of layout) fail(page, `at 360 px: ${problem}`);
  await tab.screenshot({ path: join(outDir, `${page.name}-360.png`), fullPage: true });
  await tab.setViewportSize({ width: 1280, height: 900 });
  const headerLines = await tab.evaluate(() => {
    const items = [...document.querySelectorAll('.header-inner > *, .staff-nav > *')].filter(
      (e) => e.getClientRects().length && !e.classList.contains('staff-nav'),
    );
    return new Set(items.map((e) => Math.round(e.getBoundingClientRect().top / 8))).size;
  });
  if (headerLines > 1) fail(page, `at 1280 px: the header wraps onto ${headerLines} lines`);
  await tab.screenshot({ path: join(outDir, `${page.name}-1280.png`), fullPage: true });
  await tab.setViewportSize({ width: 360, height: 800 });
  await tab.evaluate(axeSource);
  const results = await tab.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] },
      resultTypes: ['violations'],
    }),
  );
  for (const v of results.violations) {
    const targets = v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ');
    fail(page, `axe ${v.id} (${v.impact}): ${v.help} at ${targets}`);
  }
  if (outside.length) fail(page, `third-party requests: ${outside.join(', ')}`);

  // Weight of what this visit downloaded, as gzip would send it.
  const seen = new Set();
  let bytes = 0;
  for (const { url, body } of bodies) {
    if (seen.has(url)) continue;
    seen.add(url);
    bytes += gzipSync(body).length;
  }
  const kib = bytes / 1024;
  console.log(`${page.name}: ${response.status()}, ${seen.size} files, ${kib.toFixed(1)} KiB gzip, ${results.violations.length} axe violations`);
  if (page.max_kib && kib > page.max_kib) fail(page, `${kib.toFixed(1)} KiB gzip exceeds budget of ${page.max_kib} KiB`);
  await context.close();
}
await browser.close();

// One Java start for every page.
if (htmlFiles.length) {
  let report;
  try {
    execFileSync('java', ['-jar', vnuJar, '--errors-only', '--format', 'json', ...htmlFiles.map((f) => f.file)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    report = { messages: [] };
  } catch (e) {
    // vnu exits 1 when it found errors; the JSON report is on stderr.
    try {
      report = JSON.parse(e.stderr.toString());
    } catch {
      console.error(e.stderr?.toString() || e.message);
      process.exit(2);
    }
  }
  for (const m of report.messages) {
    if (m.type !== 'error' && m.subType !== 'fatal') continue;
    const entry = htmlFiles.find((f) => m.url && m.url.endsWith(`/${f.page.name}.html`));
    fail(entry ? entry.page : { name: m.url }, `HTML line ${m.lastLine}: ${m.message}`);
  }
}

if (failures.length) {
  console.error(`\n${failures.length} page check failure(s):`);
  for (const f of failures) console.error(`  - ${f}`);
  process.exit(1);
}
console.log(`${pages.length} pages passed the HTML, accessibility and layout checks`);
console.log(`screenshots (360 px and 1280 px) and HTML in ${outDir}`);
