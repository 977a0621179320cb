import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { capturing, forCommitting } from '../helpers/history-capture';

const encoded = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64');
const decoded = (data: string) => JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as unknown;

describe('history capture: which histories, and what of them may be committed', () => {
  it('captures none unless asked, all with 1, and only the named ones with a list', () => {
    assert.equal(capturing('weekly-ok', undefined), false);
    assert.equal(capturing('weekly-ok', ''), false);
    assert.equal(capturing('weekly-ok', '1'), true);
    assert.equal(capturing('weekly-ok', 'restore-vm-as, weekly-ok'), true);
    assert.equal(capturing('weekly-ok', 'weekly-ok-2,restore-vm-as'), false);
  });

  it('blanks every stack trace, nested causes included, and keeps the rest', () => {
    const history = {
      events: [
        {
          eventId: '7',
          failure: {
            message: 'injected',
            stackTrace: 'Error: injected\n    at fault (/srv/build/dist/stub.js:1:1)',
            cause: { message: 'inner', stackTrace: 'at /srv/x.js' },
          },
        },
      ],
    };
    const blanked = JSON.parse(forCommitting(JSON.stringify(history), [])) as typeof history;
    assert.deepEqual(blanked, {
      events: [
        { eventId: '7', failure: { message: 'injected', stackTrace: '', cause: { message: 'inner', stackTrace: '' } } },
      ],
    });
  });

  it('replaces machine paths in strings and in JSON payloads, leaving other payloads byte for byte', () => {
    const paths: [RegExp, string][] = [[/\/scratch\/box-[a-z]+(?=[/"'\s]|$)/g, '/sandbox']];
    const binary = Buffer.from([0xff, 0x00, 0x2f]).toString('base64');
    const history = {
      message: 'no folder /scratch/box-abc/source/2026',
      payloads: [
        { data: encoded({ where: '/scratch/box-abc/outbox/a.eml', other: '/scratch/box-abcd0' }) },
        { data: binary },
      ],
    };
    const clean = JSON.parse(forCommitting(JSON.stringify(history), paths)) as typeof history;
    assert.equal(clean.message, 'no folder /sandbox/source/2026');
    assert.deepEqual(decoded(clean.payloads[0]!.data), { where: '/sandbox/outbox/a.eml', other: '/scratch/box-abcd0' });
    assert.equal(clean.payloads[1]!.data, binary);
  });
});
