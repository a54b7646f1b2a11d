// File transfer on the page: the file offers the node knows (kept in state.files, filled by
// `files` and kept current by the file events), the card a file offer's message row shows
// (name, size, state, and Download / progress and Cancel / Save), and uploads: a picked or
// dropped file is POSTed to /files (the bytes as the body) and the node offers it.
//
// Names come from the network: they go into the DOM as text only.

import { h } from './util.js';

/** The node refuses bigger files (meshchat_core::transfer::MAX_FILE_SIZE). */
export const MAX_FILE_SIZE = 4 * 1024 * 1024 * 1024;
/** Offers the page remembers at most (the node lists its newest 200; live ones add up). */
const MAX_FILES = 1000;

export const FILE_STATES = ['offered', 'downloading', 'done', 'failed', 'cancelled', 'serving'];

const str = (v) => (typeof v === 'string' ? v : '');
const num = (v) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);

/** A `file` object of an event, as the page keeps it, or null if malformed. */
export function fileOf(o) {
  if (!o || typeof o !== 'object' || typeof o.id !== 'string' || !o.id) return null;
  return {
    id: o.id,
    from: str(o.from),
    nick: str(o.nick),
    name: str(o.name) || 'file',
    size: num(o.size),
    room: typeof o.room === 'string' ? o.room : null,
    to: typeof o.to === 'string' ? o.to : null,
    own: o.own === true,
    state: FILE_STATES.includes(o.state) ? o.state : 'offered',
    bytes: num(o.bytes),
    reason: str(o.reason),
    // the download's rate (bytes/s), from the last two progress events
    rate: 0,
    sampleAt: 0,
    sampleBytes: 0,
  };
}

/** Puts `f` in `files` (id → file), keeping what the page measured; returns the kept one. */
export function keepFile(files, f) {
  const old = files.get(f.id);
  if (old) {
    Object.assign(old, { ...f, rate: old.rate, sampleAt: old.sampleAt, sampleBytes: old.sampleBytes });
    return old;
  }
  files.set(f.id, f);
  if (files.size > MAX_FILES) {
    for (const [id, g] of files) {
      if (files.size <= MAX_FILES) break;
      if (g.state !== 'downloading') files.delete(id);
    }
  }
  return f;
}

/** A download's progress: bytes, and the rate since the last progress. */
export function noteProgress(f, bytes, total) {
  const now = performance.now();
  if (f.sampleAt && now > f.sampleAt && bytes >= f.sampleBytes) {
    const instant = ((bytes - f.sampleBytes) * 1000) / (now - f.sampleAt);
    f.rate = f.rate ? 0.6 * f.rate + 0.4 * instant : instant;
  }
  f.sampleAt = now;
  f.sampleBytes = bytes;
  f.bytes = bytes;
  if (total > 0) f.size = total;
  if (f.state !== 'done') f.state = 'downloading';
}

/** 1536 → "1.5 KiB", as the node writes sizes. */
export function formatSize(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

const STATE_TEXT = {
  offered: 'Offered',
  downloading: 'Downloading',
  done: 'Downloaded',
  failed: 'Failed',
  cancelled: 'Cancelled',
  serving: 'Shared by you',
};

/** The card of file `f` in its message row. */
export function renderFileCard(f) {
  let meta = `${formatSize(f.size)} · ${STATE_TEXT[f.state] || f.state}`;
  if (f.state === 'failed' && f.reason) meta += `: ${f.reason}`;
  const info = [
    h('bdi', { class: 'file-name', title: f.name }, f.name),
    h('span', { class: 'file-meta' }, meta),
  ];
  const actions = [];
  if (f.state === 'downloading') {
    const pct = f.size > 0 ? Math.min(100, Math.floor((f.bytes * 100) / f.size)) : 0;
    const rate = f.rate > 0 ? ` · ${formatSize(Math.round(f.rate))}/s` : '';
    info.push(
      h(
        'div',
        { class: 'file-progress-line' },
        h('progress', { class: 'file-progress', max: String(f.size || 1), value: String(f.bytes) }),
        h('span', { class: 'file-percent' }, `${pct}%${rate}`),
      ),
    );
    actions.push(h('button', { type: 'button', class: 'button-secondary file-cancel', 'data-file': f.id }, 'Cancel'));
  } else if (f.state === 'done' || f.state === 'serving') {
    actions.push(
      h(
        'a',
        { class: 'button-small file-save', href: `/files/${encodeURIComponent(f.id)}`, download: f.name },
        'Save',
      ),
    );
  } else if (!f.own) {
    actions.push(h('button', { type: 'button', class: 'button-small file-download', 'data-file': f.id }, 'Download'));
  }
  return h(
    'div',
    { class: 'file-card', dataset: { file: f.id, state: f.state } },
    h('span', { class: 'file-icon', 'aria-hidden': 'true' }, '📎'),
    h('div', { class: 'file-info' }, info),
    actions.length ? h('div', { class: 'file-actions' }, actions) : null,
  );
}

/**
 * Uploads `file` to conversation `conv` (a room, or a DM: its peer); `progress(sent, total)`
 * as it goes; resolves with the node's `file_offered` event, rejects with an Error saying why.
 */
export function upload(file, conv, progress) {
  return new Promise((resolve, reject) => {
    if (file.size > MAX_FILE_SIZE) {
      reject(new Error(`${file.name} is too large: a file is at most ${formatSize(MAX_FILE_SIZE)}.`));
      return;
    }
    const target = conv.kind === 'room' ? `room=${encodeURIComponent(conv.id)}` : `to=${encodeURIComponent(conv.id)}`;
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/files?${target}&name=${encodeURIComponent(file.name)}`);
    // The server's CSRF barrier: a cross-site form cannot send it.
    xhr.setRequestHeader('X-Meshchat-Upload', '1');
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) progress(e.loaded, e.total);
    });
    xhr.addEventListener('load', () => {
      let ev = null;
      try {
        ev = JSON.parse(xhr.responseText);
      } catch {
        ev = null;
      }
      if (xhr.status === 200 && ev && ev.event === 'file_offered') resolve(ev);
      else if (ev && typeof ev.message === 'string') reject(new Error(ev.message));
      else reject(new Error(`The upload of ${file.name} failed (HTTP ${xhr.status}).`));
    });
    xhr.addEventListener('error', () => reject(new Error(`The upload of ${file.name} failed: the node could not be reached.`)));
    xhr.addEventListener('abort', () => reject(new Error(`The upload of ${file.name} was stopped.`)));
    xhr.send(file);
  });
}

/** An upload's line above the composer: name and progress; returns its updater and remover. */
export function uploadLine(list, file) {
  const bar = h('progress', { class: 'upload-progress', max: '1', value: '0' });
  const pct = h('span', { class: 'upload-percent' }, '0%');
  const li = h(
    'li',
    { class: 'upload' },
    h('span', { class: 'file-icon', 'aria-hidden': 'true' }, '📎'),
    h('bdi', { class: 'upload-name' }, file.name),
    bar,
    pct,
  );
  list.append(li);
  list.hidden = false;
  return {
    progress(sent, total) {
      bar.max = String(total || 1);
      bar.value = String(sent);
      pct.textContent = total > 0 ? `${Math.floor((sent * 100) / total)}%` : '';
    },
    remove() {
      li.remove();
      list.hidden = list.children.length === 0;
    },
  };
}
