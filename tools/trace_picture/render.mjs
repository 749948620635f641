// Screenshot one trace in Arize Phoenix's trace view (the server must be running; see README.md).
// usage: node render.mjs <trace-id> <png> [phoenix-url] [project] [span-to-select]
import { chromium } from 'playwright-core';

const [traceId, png, base = 'http://127.0.0.1:6006', project = 'eventbus', select = 'create '] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 700 }, deviceScaleFactor: 1 });
  await page.addInitScript(() => localStorage.setItem('arize-phoenix-theme', 'light'));
  await page.goto(`${base}/projects`);
  const link = page.locator('a[href*="/projects/"]', { hasText: project }).first();
  const href = new URL(await link.getAttribute('href'), base).pathname;
  await page.goto(`${base}${href}/traces/${traceId}`);
  await page.getByText(traceId).first().waitFor();
  await page.getByText('publish ').first().waitFor();
  const collapse = page.getByRole('button', { name: 'Collapse side navigation' });
  if (await collapse.count()) await collapse.click();
  await page.waitForTimeout(800);
  // widen the trace panel over the project's page, then its span tree
  const drag = async (handle, toX) => {
    const box = await handle.boundingBox();
    const y = box.y + box.height / 2;
    await page.mouse.move(box.x + box.width / 2, y);
    await page.mouse.down();
    await page.mouse.move(toX, y, { steps: 12 });
    await page.mouse.up();
    await page.waitForTimeout(300);
  };
  const panelEdge = page.locator('[role="separator"]').nth(1);
  await page.waitForFunction(() => document.querySelectorAll('[role="separator"]').length >= 3);
  for (let i = 0; i < 5 && (await panelEdge.boundingBox()).x > 100; i++) await drag(panelEdge, 56);
  const treeEdge = page.locator('[role="separator"]').nth(2);
  for (let i = 0; i < 5 && Math.abs((await treeEdge.boundingBox()).x - 840) > 20; i++) await drag(treeEdge, 840);
  if (select) {
    await page.getByText(select, { exact: false }).filter({ hasNotText: 'publish' }).first().click().catch(e => console.log(e.message));
  }
  await page.waitForTimeout(800);
  await page.screenshot({ path: png });
} finally {
  await browser.close();
}
