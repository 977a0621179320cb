import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { calendarDay } from '../../domain/julian-day';
import { checkPathTemplate, renderPathTemplate, templateRoot } from '../../domain/path-template';

describe('path templates', () => {
  it('renders year and julian day with zero padding', () => {
    assert.equal(renderPathTemplate('/data/supim/{yyyy}/{ddd}', calendarDay('2026-01-05')), '/data/supim/2026/005');
    assert.equal(renderPathTemplate('/out/{yy}{ddd}/{mm}-{dd}', calendarDay('2024-12-31')), '/out/24366/12-31');
  });

  it('accepts usable templates', () => {
    assert.deepEqual(checkPathTemplate('/data/{yyyy}/{ddd}'), []);
    assert.deepEqual(checkPathTemplate('/data/{yyyy}-{mm}-{dd}'), []);
  });

  it('names what is wrong with a bad template', () => {
    assert.match(checkPathTemplate('data/{yyyy}/{ddd}').join(), /absolute/);
    assert.match(checkPathTemplate('/data/{yyyy}/{doy}').join(), /unknown token \{doy\}/);
    assert.match(checkPathTemplate('/data/{yyyy}').join(), /\{ddd\}/);
    assert.match(checkPathTemplate('/data/{ddd}').join(), /\{yyyy\}/);
    assert.match(checkPathTemplate('/data/../{yyyy}/{ddd}').join(), /\.\./);
    assert.match(checkPathTemplate('/data/{yyyy}/{ddd}}').join(), /unbalanced/);
  });

  it('the fixed folder above every day (the default restore root of the supim host)', () => {
    assert.equal(templateRoot('/data/supim-davs/{yyyy}/{ddd}'), '/data/supim-davs');
    assert.equal(templateRoot('/data/supim-{yyyy}/{ddd}'), '/data');
    assert.equal(templateRoot('/{yyyy}/{ddd}'), '/');
  });
});
