// The page's state: who this node is, its conversations, the roster, and the highest message
// seq seen (kept in sessionStorage so that a reload or a reconnect replays only what is new).

import { Conv } from './store.js';

const SEQ_KEY = 'meshchat.lastSeq';
export const PEER_KEY = 'meshchat.peer';

export const state = {
  me: { peer: '', nick: '', fingerprint: '' },
  /** room name → Conv, in the node's order */
  rooms: new Map(),
  /** the room whose `members` answer the user asked for (`/members`), to show it */
  askedMembers: null,
  /** peer id → Conv */
  dms: new Map(),
  current: null,
  who: [],
  whoByPeer: new Map(),
  peers: [],
  tracker: null,
  readies: 0,
  lastSeq: loadSeq(),
  seqDirty: false,
  /** id → own or received DM, for dm_status */
  dmById: new Map(),
  /** dm_status that came before its dm */
  pendingStatus: new Map(),
  /** messages of the open conversation that arrived while the tab was hidden */
  hiddenUnseen: 0,
  /** the last text sent, to put back if the node refuses it */
  pendingSend: null,
  /** file offer id (= its message's id) → file (files.js), for the file cards */
  files: new Map(),
};

function loadSeq() {
  try {
    const n = Number.parseInt(sessionStorage.getItem(SEQ_KEY) || '0', 10);
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

export function noteSeq(seq) {
  if (seq != null && seq > state.lastSeq) {
    state.lastSeq = seq;
    state.seqDirty = true;
  }
}

export function saveSeq() {
  if (!state.seqDirty) return;
  state.seqDirty = false;
  try {
    sessionStorage.setItem(SEQ_KEY, String(state.lastSeq));
  } catch {
    // private mode or storage full: replays start from live events then
  }
}

export function roomConv(name, create) {
  let conv = state.rooms.get(name);
  if (!conv && create) {
    conv = new Conv('room', name);
    state.rooms.set(name, conv);
  }
  return conv || null;
}

export function dmConv(peer, create) {
  let conv = state.dms.get(peer);
  if (!conv && create) {
    conv = new Conv('dm', peer);
    const known = state.whoByPeer.get(peer);
    if (known) {
      conv.nick = known.nick || null;
      conv.fingerprint = known.fingerprint || null;
    }
    state.dms.set(peer, conv);
  }
  return conv || null;
}

export function firstConv() {
  const room = state.rooms.values().next().value;
  return room || sortedDms()[0] || null;
}

export function sortedDms() {
  return [...state.dms.values()].sort((a, b) => (b.lastTs || b.created) - (a.lastTs || a.created));
}

/** Indexes a DM held for dm_status, applying a status that came first. */
export function takeDmState(m) {
  state.dmById.set(m.id, m);
  const early = state.pendingStatus.get(m.id);
  if (early) {
    state.pendingStatus.delete(m.id);
    if (m.own) m.state = early;
  }
}

/** Forgets the DMs among `dropped` (messages a conversation no longer holds). */
export function forgetDms(dropped) {
  for (const m of dropped) if (m.dm && state.dmById.get(m.id) === m) state.dmById.delete(m.id);
}

export function allConvs() {
  return [...state.rooms.values(), ...state.dms.values()];
}
