import type { Cycle } from '../cycle';

/** imaging: overlay — a VM an earlier run left on overlays (killed mid-merge, terminated) is merged first. */
export const mergeLeftOverlays = (c: Cycle) =>
  c.step.run('merging-left', async () => {
    const left = await c.act.merging.mergeOverlays(c.vm);
    if (left.merged.length > 0) c.result.reason = `overlays an earlier run left merged (${left.merged.join(', ')})`;
  });
