/** Renders an HTML page the way a person would see it: headless Chromium (Debian's package) to a PNG file. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const CHROMIUM = process.env.CHROMIUM ?? 'chromium';

export async function screenshotHtml(html: string, size: { width: number; height: number }): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-backup-shot-'));
  try {
    const page = join(dir, 'page.html');
    const png = join(dir, 'page.png');
    writeFileSync(page, html);
    await run(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--hide-scrollbars',
        // A page that reaches out (remote images, fonts) would show here as a blocked load, not as a pass.
        '--host-resolver-rules=MAP * ~NOTFOUND',
        `--user-data-dir=${join(dir, 'profile')}`,
        `--screenshot=${png}`,
        `--window-size=${size.width},${size.height}`,
        pathToFileURL(page).href,
      ],
      { timeout: 120_000 },
    );
    return readFileSync(png);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
