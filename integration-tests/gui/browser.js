// piranha-gui in real headless Chromium (playwright-core, Debian's chromium):
// log in, set the global settings, add a virtual server with two real servers (seeing a validation
// error beside its field first), check lvs.cf on disk, start a real lvsd (userspace IPVS, real
// nannies) and watch a real server go down on the monitoring panel without a page reload.
//
// Environment (set by run.sh): BASE, PASSWORD, CONFIG, VPORT, RS1_PORT, RS2_PORT, RS2_PID,
// LVSD, NANNY, WORK, CHROMIUM, PW_DIR.
'use strict';
const path = require('path');
const fs = require('fs');
const { spawn, spawnSync } = require('child_process');
const { chromium } = require(path.join(process.env.PW_DIR, 'node_modules', 'playwright-core'));

const env = process.env;
const BASE = env.BASE;
let passed = 0;
let failed = 0;
const children = [];

function check(cond, what) {
  if (cond) {
    passed++;
    console.log('ok   ' + what);
  } else {
    failed++;
    console.log('FAIL ' + what);
  }
  return cond;
}

function serialOnDisk() {
  if (!fs.existsSync(env.CONFIG)) return null;
  const m = fs.readFileSync(env.CONFIG, 'utf8').match(/^serial_no = (\d+)$/m);
  return m ? parseInt(m[1], 10) : null;
}

// Submits a form and waits for the page it leads to; a save error shown instead is a failure
// with its text.
async function saveTo(page, form, url) {
  await page.evaluate(() => { const f = document.getElementById('flash'); f.className = ''; f.textContent = ''; });
  const outcome = await Promise.race([
    page.waitForURL(url).then(() => 'ok'),
    page.waitForSelector('#flash.error').then(async () =>
      'error: ' + (await page.textContent('#flash')) + ' ' + (await form.locator('.general').textContent()) + ' ' +
      (await form.locator('.err').evaluateAll((es) => es.filter((e) => e.textContent).map((e) => e.dataset.err + ': ' + e.textContent).join('; ')))),
    form.locator('button[type=submit]').click().then(() => new Promise(() => {})),
  ]);
  if (outcome !== 'ok') throw new Error('saving failed: ' + outcome);
}

async function submit(page, form) {
  await Promise.all([page.waitForLoadState('load'), form.locator('button[type=submit]').click()]);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: env.CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('dialog', (d) => d.accept());
    const consoleErrors = [];
    // Expected HTTP errors (a wrong password's 401, a refused value's 422) show as "Failed to load
    // resource"; anything else is a script error.
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.setDefaultTimeout(15000);

    // --- login
    await page.goto(BASE + '/control');
    check(page.url().endsWith('/login'), 'an unauthenticated page sends the browser to /login');
    await page.fill('#password', 'not the password');
    await Promise.all([page.waitForNavigation(), page.click('#login')]);
    check((await page.textContent('body')).includes('Wrong password'), 'a wrong password is refused');
    await page.fill('#password', env.PASSWORD);
    await Promise.all([page.waitForURL('**/control'), page.click('#login')]);
    check(page.url().endsWith('/control'), 'logged in, on CONTROL/MONITORING');
    await page.click('a.help');
    check(await page.locator('#change-password').isVisible() &&
          (await page.textContent('#change-password')).includes('piranha-passwd'),
          'CHANGE PASSWORD says how (piranha-passwd on the router)');

    // --- global settings
    await page.goto(BASE + '/global');
    await page.fill('#f-primary', '127.0.0.2');
    await page.selectOption('#f-network', 'nat');
    await page.fill('#f-nat_router_ip', '127.0.0.254');
    await page.fill('#f-nat_router_device', 'lo:9');
    await page.fill('#f-nat_nmask', '255.255.255.0');
    await page.fill('#f-debug_level', 'NONE');
    await submit(page, page.locator('form.api'));
    await page.waitForSelector('#flash.ok');
    check((await page.textContent('#flash')).includes('Saved'), 'GLOBAL SETTINGS saved');
    check(/primary = 127\.0\.0\.2/.test(fs.readFileSync(env.CONFIG, 'utf8')), 'lvs.cf has primary');

    // --- redundancy: a bad value, shown beside its field, nothing written
    await page.goto(BASE + '/redundancy');
    let before = serialOnDisk();
    await page.fill('#f-keepalive', 'six');
    await page.locator('form.api button[type=submit]').click();
    await page.waitForSelector('.err[data-err="keepalive"]:not(:empty)');
    check((await page.textContent('.err[data-err="keepalive"]')).includes('seconds'), 'REDUNDANCY: error beside Heartbeat interval');
    check(serialOnDisk() === before, 'nothing written for the invalid value');
    await page.fill('#f-keepalive', '6');
    await page.fill('#f-deadtime', '18');
    await submit(page, page.locator('form.api'));
    await page.waitForSelector('#flash.ok');
    check(serialOnDisk() === before + 1, 'REDUNDANCY saved, serial_no incremented');

    // --- add a virtual server: first with a bad port
    await page.goto(BASE + '/virtual');
    await Promise.all([page.waitForURL('**/virtual/new'), page.click('#add-virtual')]);
    before = serialOnDisk();
    const vs = page.locator('form.api');
    await page.fill('#f-name', 'www');
    await page.fill('#f-port', '80x');
    await page.fill('#f-address', '127.0.0.10');
    await page.fill('#f-device', 'lo');
    await page.fill('#f-timeout', '1');
    await page.fill('#f-reentry', '2');
    await page.selectOption('#f-scheduler', 'rr');
    await page.check('#f-active');
    await vs.locator('button[type=submit]').click();
    await page.waitForSelector('.err[data-err="port"]:not(:empty)');
    const portErr = await page.textContent('.err[data-err="port"]');
    check(portErr.includes('whole number'), 'validation error beside Application port: ' + portErr);
    check(await page.locator('#f-port.invalid').count() === 1, 'the port field is marked invalid');
    check(page.url().endsWith('/virtual/new'), 'still on the form');
    check(serialOnDisk() === before, 'nothing written while invalid');
    // A semantic error (from lvs.cf validation): an active virtual server needs an address.
    await page.fill('#f-port', env.VPORT);
    await page.fill('#f-address', '');
    await page.fill('#f-device', '');
    await vs.locator('button[type=submit]').click();
    await page.waitForSelector('.err[data-err="address"]:not(:empty)');
    check((await page.textContent('.err[data-err="address"]')).includes('address'), 'validation (lvs-config) error beside Virtual IP Address');
    check(serialOnDisk() === before, 'still nothing written');
    await page.fill('#f-address', '127.0.0.10');
    await page.fill('#f-device', 'lo');
    await page.fill('#f-send', 'GET / HTTP/1.0\\r\\n\\r\\n');
    await page.fill('#f-expect', 'HTTP');
    await saveTo(page, vs, '**/virtual/0');
    check(serialOnDisk() === before + 1, 'virtual server saved, serial_no incremented');

    // --- two real servers
    for (const [name, port] of [['web1', env.RS1_PORT], ['web2', env.RS2_PORT]]) {
      await Promise.all([page.waitForURL(/\/server\/new$/), page.click('#add-real')]);
      await page.fill('#f-name', name);
      await page.fill('#f-address', '127.0.0.1');
      await page.fill('#f-port', port);
      await page.fill('#f-weight', '10');
      await saveTo(page, page.locator('form.api'), '**/virtual/0');
      check(await page.locator(`#real-servers tr[data-rs="${name}"]`).count() === 1, `real server ${name} listed`);
    }

    // --- lvs.cf on disk
    const text = fs.readFileSync(env.CONFIG, 'utf8');
    check(/virtual www \{/.test(text) && /server web1 \{/.test(text) && /server web2 \{/.test(text), 'lvs.cf holds www with web1 and web2');
    check(fs.existsSync(env.CONFIG + '.bak'), 'the previous file is kept as lvs.cf.bak');
    const ct = spawnSync(env.LVSD, ['--config-test', '-c', env.CONFIG], { encoding: 'utf8' });
    check(ct.status === 0, 'lvsd --config-test accepts the file the GUI wrote (' + (ct.stderr || '').trim().split('\n').pop() + ')');

    // The monitor binary is not a panel field: set it through the JSON API (the GUI's own API)
    // with the session and CSRF token of this browser.
    const csrf = await page.getAttribute('meta[name="csrf-token"]', 'content');
    const cfg = await (await page.request.get(BASE + '/api/config')).json();
    cfg.config.virtual_servers[0].client_monitor = env.NANNY;
    const put = await page.request.put(BASE + '/api/config', {
      headers: { 'X-CSRF-Token': csrf, 'Content-Type': 'application/json', Origin: BASE },
      data: JSON.stringify({ serial_no: cfg.serial_no, config: cfg.config }),
    });
    check(put.status() === 200, 'PUT /api/config (client_monitor) accepted: ' + put.status());

    // --- a real lvsd (userspace IPVS through ipvsd, real nannies) publishes its status
    const lvsd = spawn(env.LVSD, ['--nodaemon', '-c', env.CONFIG, '--pidfile', path.join(env.WORK, 'lvs.pid')], {
      env: Object.assign({}, env, {
        IPVS_BACKEND: 'userspace',
        IPVSD_SOCKET: path.join(env.WORK, 'ipvsd.sock'),
        PIRANHA_STATUS_DIR: path.join(env.WORK, 'status'),
        PIRANHA_STATUS_INTERVAL_MS: '500',
      }),
      stdio: ['ignore', fs.openSync(path.join(env.WORK, 'lvsd.log'), 'a'), fs.openSync(path.join(env.WORK, 'lvsd.log'), 'a')],
    });
    children.push(lvsd);
    fs.appendFileSync(path.join(env.WORK, 'pids'), lvsd.pid + '\n');

    await page.goto(BASE + '/control');
    await page.evaluate(() => { window.__noReload = 'still here'; });
    const health = (rs) => `#health-table tr[data-vs="www"][data-rs="${rs}"] td.health`;
    await page.waitForFunction((sel) => {
      const a = document.querySelector(sel[0]);
      const b = document.querySelector(sel[1]);
      return a && b && a.textContent === 'up' && b.textContent === 'up';
    }, [health('web1'), health('web2')], { timeout: 30000 });
    check(true, 'monitoring shows web1 and web2 up (from lvsd\'s status file)');
    check((await page.textContent('#procs')).includes('nanny'), 'LVS processes lists the nannies');
    check((await page.textContent('#pulse')).includes('pulse is not running'), 'pulse state shown (not running here)');
    check((await page.textContent(health('web1') + ' ~ td.weight')).trim() !== '', 'a weight is shown');

    // The real server goes down: its HTTP server stops.
    process.kill(parseInt(env.RS2_PID, 10), 'SIGTERM');
    await page.waitForFunction((sel) => {
      const b = document.querySelector(sel);
      return b && b.textContent === 'down';
    }, health('web2'), { timeout: 30000 });
    check(true, 'monitoring shows web2 down after its server stopped');
    check(await page.textContent(health('web1')) === 'up', 'web1 stays up');
    const failure = await page.textContent(`#health-table tr[data-rs="web2"] td.failure`);
    check(failure.trim().length > 0, 'the last check failure is shown: ' + failure.trim());
    check(await page.evaluate(() => window.__noReload) === 'still here', 'the panel updated without a page reload');
    // Traffic through the virtual server (ipvsd forwards it to web1): the counters lvsd reads
    // from IPVS reach the chart.
    const http = require('http');
    let served = 0;
    for (let i = 0; i < 5; i++) {
      served += await new Promise((resolve) => {
        http.get({ host: '127.0.0.10', port: parseInt(env.VPORT, 10), path: '/', timeout: 5000 }, (res) => {
          let body = '';
          res.on('data', (d) => { body += d; });
          res.on('end', () => resolve(body.includes('hello from a real server') ? 1 : 0));
        }).on('error', () => resolve(0));
      });
    }
    check(served === 5, `5 requests through the virtual server answered by web1 (${served})`);
    await page.waitForFunction(() => {
      const h = document.querySelector('.chart[data-vs="www"] h4');
      const m = h && h.textContent.match(/\((\d+) connections/);
      return m && parseInt(m[1], 10) >= 5;
    }, null, { timeout: 20000 });
    check(await page.locator('.chart[data-vs="www"] svg polyline').count() === 4, 'live charts (4 series) for www show the connections');

    // Apply: SIGHUP to the running lvsd (pulse does not run here).
    await page.click('button.act[data-url="/api/apply"]');
    await page.waitForSelector('#flash.ok');
    const applied = await page.textContent('#flash');
    check(applied.includes('SIGHUP') && applied.includes('lvsd'), 'APPLY reloads lvsd: ' + applied);

    await page.screenshot({ path: path.join(env.PW_DIR, 'control.png'), fullPage: true });

    // Logout ends the session.
    await Promise.all([page.waitForURL('**/login'), page.click('header .logout button')]);
    const after = await page.request.get(BASE + '/api/status');
    check(after.status() === 401, 'after logout the API refuses the old session');
    check(consoleErrors.length === 0, 'no JavaScript errors in the console' + (consoleErrors.length ? ': ' + consoleErrors.join('; ') : ''));
  } catch (e) {
    failed++;
    console.log('FAIL ' + (e && e.stack ? e.stack : e));
  } finally {
    await browser.close();
    for (const c of children) {
      try { c.kill('SIGTERM'); } catch (e) { /* gone */ }
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main();
