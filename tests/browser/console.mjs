// Drives the console in Debian's chromium as an operator would, for
// tests/it/console/browser.rs, which builds the world and passes it in:
// BASE_URL, TOKEN, DEAD_JOB (a dead job a worker can run), CALL_SID (a call
// with a playable recording and a transcript), SEARCH (a word of that
// transcript), PAUSE_KIND (a kind to pause and resume), SCREENSHOTS (a directory).
// Exits non-zero, saying which step failed, on the first thing that is wrong.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env('BASE_URL');
const shots = env('SCREENSHOTS');
mkdirSync(shots, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), 'switchboard-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ],
  viewport: { width: 1280, height: 900 },
});
const page = browser.pages()[0] ?? await browser.newPage();
page.on('dialog', (dialog) => dialog.accept());
const step = async (name, work) => {
  process.stdout.write(`${name} ... `);
  await work();
  console.log('ok');
};
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const expectText = async (selector, text, timeout = 10_000) => {
  await page.waitForFunction(
    ([s, t]) => document.querySelector(s)?.textContent.includes(t), [selector, text], { timeout },
  );
};

try {
  await step('a wrong token is refused', async () => {
    await page.goto(`${base}/console`);
    await page.fill('#token', 'not-a-token');
    await page.click('button[type=submit]');
    await expectText('.error', 'not one of API_TOKENS');
  });

  await step('logs in and sees the jobs page', async () => {
    await page.fill('#token', env('TOKEN'));
    await page.click('button[type=submit]');
    await page.waitForURL(`${base}/console/jobs`);
    await expectText('#counts', 'noop');
    await expectText('#errors', 'noop');
    await shot('jobs');
  });

  await step('replays a dead job and watches it go to done', async () => {
    await page.goto(`${base}/console/jobs/${env('DEAD_JOB')}`);
    await expectText('#job-state', 'dead');
    await shot('job-dead');
    await page.click('#replay');
    await expectText('#job-state', 'done', 30_000);
    await shot('job-done');
  });

  await step('sees the workers', async () => {
    await page.goto(`${base}/console/workers`);
    await expectText('#workers', 'noop');
    await shot('workers');
  });

  await step('lists calls with numbers masked', async () => {
    await page.goto(`${base}/console/calls`);
    await page.waitForSelector('#calls');
    const full = await page.evaluate(() => document.querySelector('#calls').textContent.match(/\+\d{7,}/));
    if (full) throw new Error(`a number shows in full: ${full[0]}`);
    await shot('calls');
  });

  await step('plays a recording and reads the transcript', async () => {
    await page.goto(`${base}/console/calls/${env('CALL_SID')}`);
    await page.waitForSelector('#transcript pre');
    const played = await page.evaluate(async () => {
      const audio = document.querySelector('#recording');
      await audio.play();
      await new Promise((resolve, reject) => {
        const started = Date.now();
        const check = () => (audio.currentTime > 0.2 ? resolve()
          : audio.error ? reject(new Error(`media error ${audio.error.code}`))
            : Date.now() - started > 15000 ? reject(new Error('never played')) : setTimeout(check, 50));
        check();
      });
      return { time: audio.currentTime, duration: audio.duration };
    });
    console.log(`(played ${played.time.toFixed(2)} s of ${played.duration.toFixed(2)} s)`);
    await shot('call');
  });

  await step('reveals one number when asked', async () => {
    await page.click('.number button');
    await page.waitForSelector('.number.revealed');
    const shown = await page.textContent('.number.revealed');
    if (!/^\+\d{7,}$/.test(shown.trim())) throw new Error(`revealed ${shown}`);
  });

  await step('searches transcripts', async () => {
    await page.goto(`${base}/console/calls?q=${encodeURIComponent(env('SEARCH'))}`);
    await page.waitForSelector('mark');
    await shot('calls-search');
  });

  await step('sees hot leads', async () => {
    await page.goto(`${base}/console/leads`);
    await page.waitForSelector('#leads tr[id^=lead-]');
    await shot('leads');
  });

  await step('changes an agent\'s status from the page', async () => {
    await page.goto(`${base}/console/agents`);
    const select = page.locator('#agents select[name=status]').first();
    const next = (await select.inputValue()) === 'break' ? 'available' : 'break';
    const saved = page.waitForResponse((r) => r.url().includes('/console/agents/') && r.request().method() === 'POST');
    // The answer sends the page to itself: a fresh render from the database.
    const reloaded = page.waitForEvent('load');
    await select.selectOption(next);
    if ((await saved).status() !== 200) throw new Error(`saving the status answered ${(await saved).status()}`);
    await reloaded;
    const after = await page.locator('#agents select[name=status]').first().inputValue();
    if (after !== next) throw new Error(`status is ${after} once saved, not ${next}`);
    await shot('agents');
  });
  await step('pauses and resumes a kind', async () => {
    const kind = env('PAUSE_KIND');
    await page.goto(`${base}/console/jobs`);
    const paused = page.waitForEvent('load');
    await page.click(`#pause-${kind}`);
    await paused;
    await expectText(`#paused-${kind}`, 'paused');
    await shot('jobs-paused');
    await page.click(`#resume-${kind}`);
    await page.waitForSelector(`#pause-${kind}`);
  });
} catch (error) {
  console.log('FAILED');
  console.error(error);
  await shot('failure').catch(() => {});
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log('browser test passed');
