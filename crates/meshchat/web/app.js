// meshchat's web UI: the controller. It keeps the model (store.js), talks to the node over
// one WebSocket (socket.js, the JSON.md contract), and drives the message list (view.js) and
// the sidebar (sidebar.js). All text from the network is rendered as text, never as HTML.

import { Socket } from './socket.js';
import { MessageView } from './view.js';
import { renderPeople, renderPeers, renderTracker } from './sidebar.js';
import { Conv, isState, roomMsg, dmMsg } from './store.js';
import { createPaging } from './paging.js';
import { isPeerId, mentions, normalizeRoom } from './util.js';
import { setupChrome, showError, showWarning, isNarrow, closeDrawer } from './chrome.js';
import { fileOf, keepFile, noteProgress, upload, uploadLine } from './files.js';
import {
  state, PEER_KEY, noteSeq, saveSeq, roomConv, dmConv, firstConv, sortedDms, takeDmState, allConvs,
} from './state.js';
import {
  askNotificationPermission, notify, renderSidebar, renderTitle, renderMe, renderHeader, renderStatus,
} from './ui.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 15000;

const view = new MessageView($('messages'), $('jump'), {
  me: () => state.me,
  file: (id) => state.files.get(id) || null,
  onNearTop: () => paging.loadOlder(),
  onNewest: () => paging.reloadNewest(),
});

const socket = new Socket({
  url: () => {
    const proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    return proto + location.host + '/ws' + (state.lastSeq ? `?after=${state.lastSeq}` : '');
  },
  onEvents: (events) => {
    view.batch(() => {
      for (const ev of events) {
        const handler = Object.hasOwn(handlers, ev.event) ? handlers[ev.event] : null;
        if (!handler) continue; // new events: ignored, as the contract asks
        try {
          handler(ev);
        } catch (e) {
          console.error('meshchat: handling', ev.event, e);
        }
      }
    });
    paging.trimAll();
    saveSeq();
    renderSidebar();
  },
  onState: (s, info) => renderStatus(s, info),
});

function send(cmd) {
  return socket.send(cmd);
}

const paging = createPaging({ send, view });

// ---- conversations -------------------------------------------------------------------------

/** Opens a conversation (null: none) in the main pane. */
function open(conv) {
  const prev = state.current;
  if (prev && prev !== conv) {
    prev.marker = null; // seen
    paging.close(prev);
  }
  state.current = conv;
  if (conv) {
    conv.unread = 0;
    if (prev !== conv) view.show(conv);
    paging.requestNewest(conv);
    const hash = '#' + conv.key;
    if (location.hash !== hash) history.replaceState(null, '', hash);
  } else {
    view.show(null);
  }
  renderHeader();
  renderSidebar();
  closeDrawer();
  if (conv && !isNarrow()) $('composer').focus({ preventScroll: true });
}

function openFromHash(hash) {
  const m = /^#(room|dm)\/(.+)$/.exec(hash || '');
  if (!m) return false;
  let id;
  try {
    id = decodeURIComponent(m[2]);
  } catch {
    return false;
  }
  if (m[1] === 'room') {
    const conv = state.rooms.get(id);
    if (!conv) return false;
    open(conv);
    return true;
  }
  if (!isPeerId(id) || id === state.me.peer) return false;
  open(dmConv(id, true));
  return true;
}

function removeRoom(name) {
  const conv = state.rooms.get(name);
  if (!conv) return;
  state.rooms.delete(name);
  if (state.current === conv) {
    state.current = null;
    open(firstConv());
  }
}

/**
 * A live message new to `conv`, held at index `i` (-1: not held, as it falls outside the
 * stretch held): unread count, marker, notification, view.
 */
function arrived(conv, m, i) {
  const viewing = conv === state.current;
  if (!m.own) {
    if (!viewing) conv.unread += 1;
    else if (document.hidden) state.hiddenUnseen += 1;
    if (!viewing || document.hidden) conv.markUnseen(m);
    const wanted = conv.kind === 'dm' || mentions(m.text, state.me.nick);
    if (wanted && (document.hidden || !viewing)) notify(conv, m, open);
  }
  if (viewing) {
    if (i >= 0) view.added(i);
    view.noteNew();
  }
}

// ---- events ------------------------------------------------------------------------------------

const handlers = {
  ready(ev) {
    const first = state.readies++ === 0;
    takeInfo(ev);
    try {
      const known = sessionStorage.getItem(PEER_KEY);
      if (known && known !== state.me.peer) {
        state.lastSeq = 0; // another node on this address: its numbers are not ours
        state.seqDirty = true;
      }
      sessionStorage.setItem(PEER_KEY, state.me.peer);
    } catch {
      // no storage
    }
    // The node's rooms, in its order (it may have restarted with others).
    const names = Array.isArray(ev.rooms) ? ev.rooms.filter((r) => typeof r === 'string') : [];
    const rooms = new Map();
    for (const name of names) rooms.set(name, state.rooms.get(name) || new Conv('room', name));
    state.rooms = rooms;
    const cur = state.current;
    if (cur && cur.kind === 'room' && rooms.get(cur.id) !== cur) {
      state.current = null;
      view.show(null);
    }
    for (const conv of allConvs()) conv.olderBefore = null;
    send({ cmd: 'conversations' });
    send({ cmd: 'files' });
    send({ cmd: 'rooms' });
    refreshNow();
    if (first || !state.current) {
      if (!openFromHash(location.hash)) open(firstConv());
    } else {
      paging.requestNewest(state.current);
      view.updateTop();
    }
  },

  info: takeInfo,

  nick(ev) {
    if (typeof ev.nick === 'string') state.me.nick = ev.nick;
    renderMe();
  },

  message(ev) {
    const m = roomMsg(ev);
    if (!m) return;
    noteSeq(m.seq);
    const conv = roomConv(m.room, true);
    if (m.private && !conv.private) conv.private = m.private;
    if (conv.msgs.has(m.id)) return;
    lookForFile(m);
    arrived(conv, m, conv.add(m));
  },

  history(ev) {
    const conv = typeof ev.room === 'string' ? state.rooms.get(ev.room) : null;
    if (conv) paging.applyHistory(conv, ev.messages, ev.before, roomMsg);
  },

  dm(ev) {
    const m = dmMsg(ev);
    if (!m) return;
    const peer = m.own ? m.to : m.from;
    if (!peer) return;
    const conv = dmConv(peer, true);
    if (!m.own) {
      if (m.nick) conv.nick = m.nick;
      if (m.fingerprint) conv.fingerprint = m.fingerprint;
    }
    if (conv.msgs.has(m.id)) return;
    lookForFile(m);
    const i = conv.add(m);
    if (i >= 0) takeDmState(m);
    conv.liveCount += 1;
    arrived(conv, m, i);
  },

  dm_history(ev) {
    if (typeof ev.with !== 'string') return;
    paging.applyHistory(dmConv(ev.with, true), ev.messages, ev.before, dmMsg);
  },

  dm_status(ev) {
    if (typeof ev.id !== 'string' || !isState(ev.state)) return;
    const m = state.dmById.get(ev.id);
    if (!m) {
      if (state.pendingStatus.size > 1000) state.pendingStatus.clear();
      state.pendingStatus.set(ev.id, ev.state);
      return;
    }
    if (!m.own || m.state === 'delivered') return;
    m.state = ev.state;
    if (state.current && state.current.msgs.get(m.id) === m) view.updateState(m);
  },

  conversations(ev) {
    const list = Array.isArray(ev.conversations) ? ev.conversations : [];
    for (const c of list) {
      if (!c || typeof c.peer_id !== 'string' || c.peer_id === state.me.peer) continue;
      const conv = dmConv(c.peer_id, true);
      if (typeof c.nick === 'string' && c.nick) conv.nick = c.nick;
      if (typeof c.fingerprint === 'string' && c.fingerprint) conv.fingerprint = c.fingerprint;
      if (Number.isFinite(c.last_ts) && c.last_ts > conv.lastTs) conv.lastTs = c.last_ts;
      if (Number.isInteger(c.count)) {
        // DMs are not replayed after a reconnect: more than we saw means new ones came meanwhile.
        if (conv.serverCount != null && conv !== state.current) {
          const expected = conv.serverCount + conv.liveCount;
          if (c.count > expected) conv.unread += c.count - expected;
        }
        conv.serverCount = c.count;
        conv.liveCount = 0;
      }
    }
    if (state.current) renderHeader();
  },

  who(ev) {
    state.who = Array.isArray(ev.peers) ? ev.peers.filter((p) => p && typeof p.peer_id === 'string') : [];
    state.whoByPeer = new Map(state.who.map((p) => [p.peer_id, p]));
    for (const p of state.who) {
      const conv = state.dms.get(p.peer_id);
      if (conv && typeof p.nick === 'string' && p.nick) conv.nick = p.nick;
      if (conv && typeof p.fingerprint === 'string' && p.fingerprint) conv.fingerprint = p.fingerprint;
    }
    renderPeople($('people'), state.who);
    $('people-count').textContent = state.who.length ? String(state.who.length) : '';
    renderPeers($('peers'), state.peers, state.whoByPeer);
    renderHeader();
  },

  peers(ev) {
    state.peers = Array.isArray(ev.peers) ? ev.peers.filter((p) => p && typeof p.peer_id === 'string') : [];
    renderPeers($('peers'), state.peers, state.whoByPeer);
    $('peers-count').textContent = state.peers.length ? String(state.peers.length) : '';
  },

  tracker(ev) {
    state.tracker = ev;
    renderTracker($('tracker'), $('tracker-meta'), ev);
  },

  tracker_changed(ev) {
    if (ev.tracker == null) {
      state.tracker = { ...(state.tracker || {}), tracker: null, nick: null, self: false };
      renderTracker($('tracker'), $('tracker-meta'), state.tracker);
    }
    refreshSoon();
  },

  peer_connected: () => refreshSoon(),
  peer_disconnected: () => refreshSoon(),

  joined(ev) {
    if (typeof ev.room !== 'string') return;
    const conv = roomConv(ev.room, true);
    if (ev.private === 'passphrase' || ev.private === 'invite') conv.private = ev.private;
    conv.removed = false;
    if (typeof ev.by === 'string') {
      // An invite: the room is listed, the one on screen stays.
      const p = state.whoByPeer.get(ev.by);
      const who = p && typeof p.nick === 'string' && p.nick ? p.nick : ev.by;
      showWarning(`${who} invited you to 🔒#${ev.room}`);
      return;
    }
    open(conv);
  },

  rooms(ev) {
    const list = Array.isArray(ev.rooms) ? ev.rooms : [];
    for (const r of list) {
      const conv = r && typeof r.name === 'string' ? state.rooms.get(r.name) : null;
      if (!conv) continue;
      conv.private = r.private === 'passphrase' || r.private === 'invite' ? r.private : null;
      conv.members = Number.isInteger(r.members) ? r.members : null;
    }
    renderHeader();
  },

  members(ev) {
    const conv = typeof ev.room === 'string' ? state.rooms.get(ev.room) : null;
    const list = Array.isArray(ev.members) ? ev.members.filter((m) => m && typeof m.peer_id === 'string') : [];
    if (!conv) return;
    conv.members = list.length;
    const member = list.some((m) => m.peer_id === state.me.peer);
    if (!member && !conv.removed && conv.private === 'invite') {
      showWarning(`You were removed from 🔒#${conv.id}: what came before stays readable, nothing new.`);
    }
    if (conv.private === 'invite') conv.removed = !member;
    if (state.askedMembers === conv.id) {
      state.askedMembers = null;
      const names = list
        .map((m) => `${m.admin ? '★' : ''}${typeof m.nick === 'string' && m.nick ? m.nick : m.peer_id}`)
        .join(', ');
      showWarning(`Members of 🔒#${conv.id} (${list.length}): ${names || 'none heard yet'}`);
    }
    renderHeader();
  },

  invited(ev) {
    if (typeof ev.room === 'string') showWarning(`Invited ${ev.who} to 🔒#${ev.room} (the invite travels by DM).`);
  },

  removed(ev) {
    if (typeof ev.room === 'string') showWarning(`Removed ${ev.who} from 🔒#${ev.room}: a new key went to the others.`);
  },

  left(ev) {
    if (typeof ev.room === 'string') removeRoom(ev.room);
  },

  sent: () => {
    state.pendingSend = null;
  },
  dm_sent: () => {
    state.pendingSend = null;
  },

  error(ev) {
    const message = typeof ev.message === 'string' ? ev.message : 'The node refused a command.';
    showError(message);
    // A refused send: give the text back rather than lose it.
    const p = state.pendingSend;
    state.pendingSend = null;
    const composer = $('composer');
    if (p && Date.now() - p.at < 10000 && composer.value === '' && state.current === p.conv) {
      composer.value = p.text;
      composer.dispatchEvent(new Event('input'));
    }
  },

  warning(ev) {
    if (typeof ev.message === 'string') showWarning(ev.message);
  },

  lagged: () => {
    // the node replays the messages right after it; file events may have been missed
    filesSoon();
  },

  files(ev) {
    const list = Array.isArray(ev.files) ? ev.files : [];
    for (const o of list) {
      const f = fileOf(o);
      if (f) view.updateFile(keepFile(state.files, f));
    }
  },

  file_offered: takeFile,
  file_offer: takeFile,

  file_accepted(ev) {
    fileChange(ev, (f) => {
      if (f.state !== 'done') f.state = 'downloading';
      f.rate = 0;
      f.sampleAt = 0;
    });
  },

  file_progress(ev) {
    fileChange(ev, (f) => noteProgress(f, Number(ev.bytes) || 0, Number(ev.total) || 0));
  },

  file_done(ev) {
    fileChange(ev, (f) => {
      f.state = 'done';
      f.bytes = f.size;
    });
  },

  file_failed(ev) {
    fileChange(ev, (f) => {
      f.state = 'failed';
      f.reason = typeof ev.reason === 'string' ? ev.reason : '';
    });
  },

  file_cancelled(ev) {
    fileChange(ev, (f) => {
      f.state = 'cancelled';
      f.bytes = 0;
    });
  },
};

// ---- files ---------------------------------------------------------------------------------

function takeFile(ev) {
  const f = fileOf(ev);
  if (f) view.updateFile(keepFile(state.files, f));
}

/** A file event about `ev.id`: `change` applies it to the file known, else the list is asked for. */
function fileChange(ev, change) {
  const f = typeof ev.id === 'string' ? state.files.get(ev.id) : null;
  if (!f) {
    filesSoon();
    return;
  }
  change(f);
  view.updateFile(f);
}

/** A message that looks like a file offer the page does not know: ask for the files. */
function lookForFile(m) {
  if (!state.files.has(m.id) && m.text.startsWith('📎 ')) filesSoon();
}

let filesTimer = null;
function filesSoon() {
  if (filesTimer) return;
  filesTimer = setTimeout(() => {
    filesTimer = null;
    send({ cmd: 'files' });
  }, 300);
}

/** Uploads files (picked or dropped) to the open conversation, each with its progress line. */
function sendFiles(list) {
  const conv = state.current;
  if (!conv) {
    showError('Open a room or a conversation to send a file to.');
    return;
  }
  for (const file of list) {
    const line = uploadLine($('uploads'), file);
    upload(file, conv, (sent, total) => line.progress(sent, total))
      .then((ev) => view.batch(() => takeFile(ev)))
      .catch((e) => showError(e.message))
      .finally(() => line.remove());
  }
}

function wireFiles() {
  const input = $('file-input');
  $('attach-button').addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    const picked = [...input.files];
    input.value = '';
    sendFiles(picked);
  });
  $('messages').addEventListener('click', (e) => {
    const button = e.target.closest('.file-download, .file-cancel');
    const id = button && button.dataset.file;
    if (!id) return;
    const cmd = button.classList.contains('file-cancel') ? 'cancel_file' : 'accept_file';
    if (!send({ cmd, id })) showError('Not connected to the node.');
  });
  // Dropping a file on the conversation sends it there; a hint shows while dragging.
  const pane = document.querySelector('.messages-wrap');
  const hint = $('drop-hint');
  const carriesFiles = (e) => !!e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  let depth = 0;
  pane.addEventListener('dragenter', (e) => {
    if (!carriesFiles(e) || !state.current) return;
    e.preventDefault();
    depth += 1;
    hint.hidden = false;
  });
  pane.addEventListener('dragover', (e) => {
    if (!carriesFiles(e) || !state.current) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  pane.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) hint.hidden = true;
  });
  pane.addEventListener('drop', (e) => {
    depth = 0;
    hint.hidden = true;
    if (!carriesFiles(e)) return;
    e.preventDefault();
    sendFiles([...e.dataTransfer.files]);
  });
  // A file dropped elsewhere must not replace the page with itself.
  window.addEventListener('dragover', (e) => {
    if (carriesFiles(e)) e.preventDefault();
  });
  window.addEventListener('drop', (e) => {
    if (carriesFiles(e)) e.preventDefault();
  });
}

function takeInfo(ev) {
  if (typeof ev.peer_id === 'string') state.me.peer = ev.peer_id;
  if (typeof ev.nick === 'string') state.me.nick = ev.nick;
  if (typeof ev.fingerprint === 'string') state.me.fingerprint = ev.fingerprint;
  renderMe();
}

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshNow, 500);
}
function refreshNow() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  send({ cmd: 'who' });
  send({ cmd: 'peers' });
  send({ cmd: 'tracker' });
}
setInterval(() => {
  if (socket.isOpen) refreshNow();
}, REFRESH_MS);

// ---- user actions ------------------------------------------------------------------------------

/**
 * The private room commands typed in the composer (`/join ROOM --key PASSPHRASE`, `/create
 * ROOM`, `/invite WHO`, `/remove WHO`, `/members`, the last three on the room open): the
 * command to send, `{ error }`, or null for a line that is text (anything else, as before).
 */
function slashCommand(text, conv) {
  const m = /^\/(join|j|create|invite|remove|members)(?:\s+([\s\S]*))?$/.exec(text.trim());
  if (!m) return null;
  const [, name, rest = ''] = m;
  const arg = rest.trim();
  if (name === 'join' || name === 'j' || name === 'create') {
    const [word, ...more] = arg.split(/\s+/);
    const room = normalizeRoom(word || '');
    if (!room) return { error: `Usage: /${name} ROOM${name === 'create' ? '' : ' [--key PASSPHRASE]'}` };
    if (name === 'create') return more.length ? { error: 'Usage: /create ROOM' } : { cmd: 'create', room };
    if (!more.length) return { cmd: 'join', room };
    const key = /^\S+\s+--key\s+([\s\S]+)$/.exec(arg);
    if (!key) return { error: 'Usage: /join ROOM --key PASSPHRASE' };
    return { cmd: 'join', room, key: key[1].trim() };
  }
  if (!conv || conv.kind !== 'room' || !conv.private) {
    return { error: `/${name} works in a private room (🔒): /create one, or /join ROOM --key PASSPHRASE.` };
  }
  if (name === 'members') {
    state.askedMembers = conv.id;
    return { cmd: 'members', room: conv.id };
  }
  if (!arg) return { error: `Usage: /${name} WHO (a nick, fingerprint or peer id)` };
  return { cmd: name, room: conv.id, who: arg };
}

function sendComposer() {
  const composer = $('composer');
  const text = composer.value;
  const conv = state.current;
  if (text.trim() === '') return;
  const command = slashCommand(text, conv);
  if (command && command.error) {
    showError(command.error);
    return;
  }
  if (command) {
    if (!send(command)) {
      showError('Not connected to the node.');
      return;
    }
    // Cleared at once: a passphrase does not stay on screen.
    composer.value = '';
    composer.dispatchEvent(new Event('input'));
    return;
  }
  if (!conv) return;
  if (!socket.isOpen) {
    showError('Not connected to the node: the message was not sent.');
    return;
  }
  const cmd = conv.kind === 'room' ? { cmd: 'send', room: conv.id, text } : { cmd: 'dm', to: conv.id, text };
  if (!send(cmd)) return;
  state.pendingSend = { text, conv, at: Date.now() };
  composer.value = '';
  composer.dispatchEvent(new Event('input'));
  view.scrollToBottom();
}

function joinFromInput() {
  const input = $('join-input');
  const name = normalizeRoom(input.value);
  if (!name) {
    if (input.value.trim()) {
      showError('A room name is 1 to 32 characters: a-z, 0-9, "-", "_" and ".".');
    }
    return;
  }
  input.value = '';
  const existing = state.rooms.get(name);
  if (existing) {
    open(existing);
    return;
  }
  if (!send({ cmd: 'join', room: name })) {
    showError('Not connected to the node.');
    input.value = name;
  }
}

function step(delta) {
  const all = [...state.rooms.values(), ...sortedDms()];
  if (!all.length) return;
  const i = all.indexOf(state.current);
  open(all[(i + delta + all.length) % all.length]);
}

function wire() {
  const composer = $('composer');
  composer.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendComposer();
    }
  });
  composer.addEventListener('input', () => {
    composer.style.height = 'auto';
    composer.style.height = Math.min(composer.scrollHeight, 200) + 'px';
  });
  $('composer-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sendComposer();
    composer.focus();
  });
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    joinFromInput();
  });
  $('leave-button').addEventListener('click', () => {
    const conv = state.current;
    if (conv && conv.kind === 'room' && !send({ cmd: 'leave', room: conv.id })) {
      showError('Not connected to the node.');
    }
  });
  $('rooms').addEventListener('click', (e) => {
    const li = e.target.closest('li[data-room]');
    const conv = li && state.rooms.get(li.dataset.room);
    if (conv) open(conv);
  });
  $('conversations').addEventListener('click', (e) => {
    const li = e.target.closest('li[data-peer]');
    const conv = li && state.dms.get(li.dataset.peer);
    if (conv) open(conv);
  });
  $('people').addEventListener('click', (e) => {
    const button = e.target.closest('.dm-button');
    const li = button && button.closest('li[data-peer]');
    if (!li || li.dataset.peer === state.me.peer) return;
    open(dmConv(li.dataset.peer, true));
  });
  window.addEventListener('hashchange', () => {
    if (!state.current || location.hash !== '#' + state.current.key) openFromHash(location.hash);
  });
  document.addEventListener('keydown', (e) => {
    if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown')) {
      e.preventDefault();
      step(e.key === 'ArrowUp' ? -1 : 1);
    }
  });
  document.addEventListener('click', askNotificationPermission, { once: true });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      // What was on screen has been seen: the next marker goes before what comes while away.
      const conv = state.current;
      if (conv && conv.marker) {
        conv.marker = null;
        view.placeMarker();
      }
    } else {
      state.hiddenUnseen = 0;
      renderTitle();
      socket.retryNow();
    }
  });
  window.addEventListener('online', () => socket.retryNow());
}

setupChrome();
wire();
wireFiles();
renderMe();
renderHeader();
renderSidebar();
renderTracker($('tracker'), $('tracker-meta'), null);
socket.connect();
