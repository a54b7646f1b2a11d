// Paging through a conversation's history with the node: the newest page when it opens, older
// pages as the reader scrolls back past what the page holds, the newest page again when the
// reader comes back after the newest were dropped; and the bounds on what each conversation
// holds (store.js), applied after every batch of events.

import { MAX_CLOSED, MAX_STORED, PAGE, STATE_RANK, isState } from './store.js';
import { state, noteSeq, takeDmState, forgetDms, allConvs } from './state.js';

/**
 * @param {{send: (cmd: object) => boolean, view: import('./view.js').MessageView}} deps
 */
export function createPaging({ send, view }) {
  const pageCmd = (conv, before) => {
    const cmd = conv.kind === 'room'
      ? { cmd: 'history', room: conv.id, limit: PAGE }
      : { cmd: 'dm_history', with: conv.id, limit: PAGE };
    if (before) cmd.before = before;
    return cmd;
  };

  return {
    /** Asks for the newest page of `conv`. */
    requestNewest(conv) {
      send(pageCmd(conv, null));
    },

    /** The reader is at the top of the window: show older held messages, else ask the node. */
    loadOlder() {
      const conv = state.current;
      if (!conv || view.growUp() > 0 || !view.atStart()) return;
      if (!conv.historyLoaded || conv.complete || conv.loadingOlder || conv.reloading) return;
      const oldest = conv.list[0];
      if (!oldest) return;
      const before = { ts: oldest.ts, id: oldest.id };
      if (send(pageCmd(conv, before))) {
        conv.olderBefore = before;
        view.updateTop();
      }
    },

    /** The newest messages are wanted but were dropped: the newest page replaces the rest. */
    reloadNewest() {
      const conv = state.current;
      if (!conv || conv.reloading) return;
      conv.waiting = [];
      conv.waitingLost = false;
      if (send(pageCmd(conv, null))) conv.reloading = true;
    },

    /** Merges a page of history (room or DM) into `conv`. */
    applyHistory(conv, entries, before, normalize) {
      const list = Array.isArray(entries) ? entries : [];
      const older = before != null;
      const viewing = conv === state.current;
      if (older) {
        // Only the answer to the page asked for, if the stretch still starts where it did.
        const asked = conv.olderBefore;
        if (!asked || typeof before !== 'object' || before.id !== asked.id) return;
        conv.olderBefore = null;
        if (!conv.list.length || conv.list[0].id !== asked.id) {
          if (viewing) view.updateTop();
          return;
        }
      }
      // Reloading: the page replaces the stretch, with what came meanwhile. If some of that was
      // lost, the page is older than the rest of it: only the rest is kept.
      let waiting = null;
      let skipPage = false;
      if (!older && conv.reloading) {
        waiting = conv.waiting;
        skipPage = conv.waitingLost;
        conv.waiting = [];
        conv.waitingLost = false;
        forgetDms(conv.reset());
      }
      const fresh = waiting !== null;
      // A fresh page has seen no message event yet: the newest page tells where the node is.
      const initSeq = !older && state.lastSeq === 0;
      const atStart = viewing && !fresh && view.atStart();
      // The newest page is next to the newest held, older ones next to the oldest: either may
      // extend the stretch downwards, unless the newest were dropped (then it lies elsewhere).
      const extend = older || !conv.tailCut;
      for (const entry of skipPage ? [] : list) {
        const m = normalize(entry);
        if (!m) continue;
        if (initSeq && !m.dm) noteSeq(m.seq);
        const existing = conv.msgs.get(m.id);
        if (existing) {
          if (existing.dm && existing.own && isState(m.state) && STATE_RANK[m.state] > STATE_RANK[existing.state]) {
            existing.state = m.state;
            if (viewing) view.updateState(existing);
          }
          continue;
        }
        const i = conv.add(m, extend);
        if (i < 0) continue;
        if (m.dm) takeDmState(m);
        if (viewing && !fresh) view.added(i);
      }
      if (fresh) {
        for (const m of waiting) if (conv.add(m) >= 0 && m.dm) takeDmState(m);
      }
      if (!older) conv.historyLoaded = true;
      if (list.length < PAGE && extend && !skipPage) conv.complete = true;
      if (!viewing) return;
      if (fresh) view.show(conv, true);
      else if (atStart) view.growUp(true);
      view.updateTop();
    },

    /** Applies the bounds: the open conversation around its window, the others to their newest. */
    trimAll() {
      for (const conv of allConvs()) {
        if (conv === state.current) forgetDms(conv.trim(MAX_STORED, view.first, view.last));
        else forgetDms(conv.trim(MAX_CLOSED));
      }
    },

    /** `conv` is no longer open: it keeps its newest messages only. */
    close(conv) {
      conv.olderBefore = null;
      if (conv.tailCut) {
        forgetDms(conv.reset());
        conv.waiting = [];
      } else {
        forgetDms(conv.trim(MAX_CLOSED));
      }
    },
  };
}
