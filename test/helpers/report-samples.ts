/** Realistic runs for report tests and the documentation screenshots: a bad night among good ones. */
import { blankDayResult, type DailySettings, type DailySummary } from '../../domain/daily-summary';
import { calendarDay } from '../../domain/julian-day';
import type { RunLink, RunOutcome } from '../../domain/report';
import type { DailyTrendPoint, WeeklyTrendPoint } from '../../domain/report-trend';
import type { StoreUsage } from '../../domain/store-usage';
import type { VmResult, WeeklySummary } from '../../domain/weekly-summary';

const GiB = 1024 ** 3;
const TiB = 1024 ** 4;

export const sampleLink = (workflowId: string): RunLink => ({
  namespace: 'default',
  workflowId,
  runId: '0b9c4a5e-8f61-4d2b-9a7e-3c1f2d6e7a80',
  uiBaseUrl: 'http://backup-host:8233',
});

const settings: DailySettings = {
  timeZone: 'America/Sao_Paulo',
  daysBack: 2,
  sourceTemplate: '/data/supim/{yyyy}/{ddd}',
  destinationRoot: '/srv/backup/supim',
  verify: 'size',
  heartbeatTimeoutSeconds: 30,
  storeTaskQueue: 'cluster-backup-store',
};

export function sampleDaily(): RunOutcome<DailySummary> {
  const day = (iso: string, over: Partial<ReturnType<typeof blankDayResult>>) => ({
    ...blankDayResult(calendarDay(iso), settings, 'copied'),
    ...over,
  });
  return {
    state: 'completed',
    summary: {
      runDate: '2026-11-27',
      timeZone: 'America/Sao_Paulo',
      ok: false,
      startedAt: '2026-11-27T06:00:00.000Z',
      finishedAt: '2026-11-27T06:21:40.000Z',
      days: [
        day('2026-11-25', { status: 'complete', filesInSource: 1440, bytesInSource: 37 * GiB, durationMs: 900 }),
        day('2026-11-26', {
          status: 'failed',
          filesInSource: 1440,
          filesCopied: 611,
          bytesCopied: Math.round(15.2 * GiB),
          durationMs: 741_000,
          reason: 'connection to compute (10.0.0.5:22) lost: ECONNRESET; retried 8 times',
        }),
        day('2026-11-27', {
          status: 'not-yet',
          durationMs: 400,
          reason: 'still being written: newest file is 3 minutes old (settleSeconds 600)',
        }),
      ],
    },
  };
}

export function sampleDailyTrend(): DailyTrendPoint[] {
  const points: DailyTrendPoint[] = [];
  for (let i = 1; i <= 14; i++) {
    const ddd = 331 - i;
    const result = ddd === 324 ? 'failed' : ddd === 327 ? 'incomplete' : 'ok';
    const bytesCopied = result === 'failed' ? 0 : Math.round((30 + ((ddd * 7) % 11)) * GiB);
    points.push({ label: `2026-${ddd}`, result, bytesCopied, filesCopied: result === 'failed' ? 0 : 1440 });
  }
  return points; // newest first, as read from Temporal
}

const image = (vm: string, disk: string, size: number) => {
  const bytes = Math.round(size);
  return {
    disk,
    path: `/var/lib/libvirt/backup/${vm}/20261129T050000Z/${disk}.qcow2`,
    bytes,
    virtualSize: 4 * bytes,
    sha256: `${vm}${disk}`.padEnd(64, '0'),
  };
};

function vm(name: string, over: Partial<VmResult>): VmResult {
  const images = [image(name, 'vda', 18.4 * GiB)];
  return {
    vm: name,
    status: 'backed-up',
    wasRunning: true,
    runningAtEnd: true,
    downtimeMs: 94_300,
    images,
    stored: images,
    previousImageBytes: 18.1 * GiB,
    steps: [
      { step: 'preflight', startedAt: '', ms: 1_200 },
      { step: 'stopping', startedAt: '', ms: 21_800 },
      { step: 'imaging', startedAt: '', ms: 64_100 },
      { step: 'verifying', startedAt: '', ms: 6_300 },
      { step: 'starting', startedAt: '', ms: 2_100 },
      { step: 'pulling', startedAt: '', ms: 402_000 },
    ],
    imageAreaFreeBefore: 410 * GiB,
    imageAreaFreeAfter: 391 * GiB,
    storeFreeBefore: 2.1 * TiB,
    storeFreeAfter: 2.08 * TiB,
    deleted: [`store: ${name}/20260906T050000Z (beyond the retention policy)`],
    ...over,
  };
}

export function sampleWeekly(): RunOutcome<WeeklySummary> {
  return {
    state: 'completed',
    summary: {
      week: '2026-W48',
      stamp: '20261129T050000Z',
      ok: false,
      startedAt: '2026-11-29T05:00:00.000Z',
      finishedAt: '2026-11-29T05:41:00.000Z',
      vms: [
        vm('db', {}),
        vm('web', { downtimeMs: 41_700, images: [image('web', 'vda', 6.2 * GiB)], previousImageBytes: 6.1 * GiB }),
        vm('license-server', {
          status: 'failed',
          failedStep: 'verifying',
          reason: 'qemu-img check: 2 leaked clusters, 1 corruption in vda.qcow2',
          downtimeMs: 132_900,
          images: [],
          stored: [],
          deleted: [],
        }),
      ],
    },
  };
}

export function sampleWeeklyTrend(): WeeklyTrendPoint[] {
  const points: WeeklyTrendPoint[] = [];
  for (let i = 1; i <= 8; i++) {
    const week = 48 - i;
    points.push({
      label: `2026-W${week}`,
      result: week === 44 ? 'failed' : 'ok',
      vms:
        week === 44
          ? []
          : [
              {
                vm: 'db',
                status: 'backed-up',
                imageBytes: (18.4 - i * 0.3) * GiB,
                downtimeMs: 80_000 + ((week * 13) % 9) * 3000,
              },
              {
                vm: 'web',
                status: 'backed-up',
                imageBytes: (6.2 - i * 0.05) * GiB,
                downtimeMs: 38_000 + ((week * 7) % 5) * 2000,
              },
              {
                vm: 'license-server',
                status: week === 46 ? 'skipped' : 'backed-up',
                ...(week === 46 ? {} : { imageBytes: 2.1 * GiB, downtimeMs: 35_000 }),
              },
            ],
    });
  }
  return points;
}

export function sampleStores(): StoreUsage[] {
  return [
    {
      stores: ['daily', 'images'],
      path: '/srv/backup',
      totalBytes: 8 * TiB,
      freeBytes: Math.round(2.08 * TiB),
      imageSetBytes: 1.9 * TiB,
      imageSets: 36,
    },
  ];
}
