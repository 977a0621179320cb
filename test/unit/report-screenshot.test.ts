import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { dailyReport, weeklyReport, type Report } from '../../domain/report';
import { TONE_COLOUR } from '../../domain/report-html';
import { PROJECT_ROOT } from '../../scripts/sandbox/temporal-dev-server';
import { screenshotHtml } from '../helpers/chromium';
import { countColour, decodePng, distinctColours, type Pixels } from '../helpers/png';
import * as sample from '../helpers/report-samples';

/** A phone held upright: what operators read the reports on at 7 a.m. */
const PHONE_WIDTH = 400;
const BELOW_BANNER = 70;

/** Rows down to the last one that is not page background: how tall the report is. */
function contentHeight(p: Pixels): number {
  for (let y = p.height - 1; y >= 0; y--) {
    for (let x = 0; x < p.width; x++) {
      const i = (y * p.width + x) * 4;
      if (p.rgba[i] !== 0xf1 || p.rgba[i + 1] !== 0xf3 || p.rgba[i + 2] !== 0xf4) return y + 1;
    }
  }
  return 0;
}

async function render(report: Report, docsName?: string): Promise<Pixels> {
  const tall = decodePng(await screenshotHtml(report.html, { width: PHONE_WIDTH, height: 4000 }));
  const height = contentHeight(tall) + 8;
  assert.ok(height < 3500, `the report fits in ${height} px`);
  const png = await screenshotHtml(report.html, { width: PHONE_WIDTH, height });
  // `UPDATE_DOCS_SCREENSHOTS=1 node scripts/run-tests.mjs report-screenshot` refreshes the README's pictures.
  if (docsName && process.env.UPDATE_DOCS_SCREENSHOTS) writeFileSync(join(PROJECT_ROOT, 'docs', docsName), png);
  return decodePng(png);
}

/** The headline banner: the report's colour, across the page, near the top. */
function bannerColour(p: Pixels): string {
  const i = (24 * p.width + Math.floor(p.width / 2)) * 4;
  return `#${[p.rgba[i]!, p.rgba[i + 1]!, p.rgba[i + 2]!].map((c) => c.toString(16).padStart(2, '0')).join('')}`;
}

const failedDaily = () =>
  dailyReport(sample.sampleDaily(), sample.sampleLink('supim-2026-331'), '2026-331', {
    pastRuns: sample.sampleDailyTrend(),
    stores: sample.sampleStores(),
  });
const failedWeekly = () =>
  weeklyReport(sample.sampleWeekly(), sample.sampleLink('vms-2026-W48'), '2026-W48', {
    pastRuns: sample.sampleWeeklyTrend(),
    stores: sample.sampleStores(),
  });

describe('reports as a person sees them (headless Chromium, phone width)', () => {
  it('uses inline styles only: no style block, script, image or remote resource', () => {
    for (const r of [failedDaily(), failedWeekly()]) {
      assert.doesNotMatch(r.html, /<style|<script|<img|<link|src=|url\(/i);
      assert.ok(r.html.length < 100_000, 'small enough not to be clipped by mail clients (Gmail: 102 KB)');
    }
  });

  it('draws a failed daily run: red headline, coloured day statuses, trend bars and the store bar', async () => {
    const report = failedDaily();
    const p = await render(report, 'report-daily.png');
    assert.ok(distinctColours(p) > 50, 'not a blank page');
    assert.equal(bannerColour(p), TONE_COLOUR.bad);
    assert.ok(countColour(p, TONE_COLOUR.good) > 5_000, 'green: the complete day and the good runs of the trend');
    assert.ok(countColour(p, TONE_COLOUR.warn) > 300, 'amber: the day not yet written');
    assert.ok(countColour(p, TONE_COLOUR.bad, BELOW_BANNER) > 1_000, 'red: the failed day and the failed runs');
    assert.ok(countColour(p, '#1a73e8') > 1_000, 'blue: the image sets retention keeps, in the store bar');
  });

  it('draws a good daily run green, with no red anywhere', async () => {
    const good = sample.sampleDaily();
    const days = good.summary!.days.map((d) => ({ ...d, status: 'copied' as const, reason: undefined }));
    const report = dailyReport(
      { state: 'completed', summary: { ...good.summary!, days, ok: true } },
      sample.sampleLink('supim-2026-331'),
      '2026-331',
      { pastRuns: sample.sampleDailyTrend().filter((t) => t.result === 'ok') },
    );
    const p = await render(report);
    assert.equal(bannerColour(p), TONE_COLOUR.good);
    assert.equal(countColour(p, TONE_COLOUR.bad), 0);
  });

  it('draws a weekly run: a card per VM in its colour, image size and downtime bars per VM', async () => {
    const report = failedWeekly();
    const p = await render(report, 'report-weekly.png');
    assert.ok(distinctColours(p) > 50, 'not a blank page');
    assert.equal(bannerColour(p), TONE_COLOUR.bad);
    assert.ok(countColour(p, TONE_COLOUR.good) > 10_000, 'green: two VMs backed up, eight weeks of bars');
    assert.ok(countColour(p, TONE_COLOUR.bad, BELOW_BANNER) > 1_500, 'red: the failed VM, its pill and its bar');
  });
});
