// The one WebSocket to the node: JSON commands out, JSON events in, reconnecting with backoff.
// Events are handed over in batches (all the frames that arrived before the page got to run),
// so a replay of thousands of messages costs one layout, not thousands.

const MIN_DELAY = 500;
const MAX_DELAY = 10000;

export class Socket {
  /**
   * @param {object} opts
   * @param {() => string} opts.url        the URL to (re)connect to, asked at every attempt
   * @param {(events: object[]) => void} opts.onEvents
   * @param {(state: 'connecting'|'open'|'closed', info: {retryIn?: number, everOpened: boolean}) => void} opts.onState
   */
  constructor({ url, onEvents, onState }) {
    this.url = url;
    this.onEvents = onEvents;
    this.onState = onState;
    this.ws = null;
    this.delay = MIN_DELAY;
    this.timer = null;
    this.queue = [];
    this.flushScheduled = false;
    this.everOpened = false;
    this.state = 'closed';
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      console.error('meshchat: cannot open the WebSocket', e);
      this.setState('closed');
      this.retryLater();
      return;
    }
    this.ws = ws;
    this.setState('connecting');
    ws.addEventListener('open', () => {
      if (ws !== this.ws) return;
      this.everOpened = true;
      this.setState('open');
    });
    ws.addEventListener('message', (e) => {
      if (ws !== this.ws || typeof e.data !== 'string') return;
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch {
        console.warn('meshchat: a frame that is not JSON');
        return;
      }
      if (!ev || typeof ev !== 'object' || typeof ev.event !== 'string') return;
      // A node that answers is a node that works: the next drop retries quickly again.
      if (ev.event === 'ready') this.delay = MIN_DELAY;
      this.queue.push(ev);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setTimeout(() => this.flush(), 0);
      }
    });
    ws.addEventListener('close', () => {
      if (ws !== this.ws) return;
      this.flush();
      this.ws = null;
      this.retryLater();
    });
    // 'error' is always followed by 'close', which does the work.
  }

  flush() {
    this.flushScheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    this.onEvents(batch);
  }

  retryLater() {
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, MAX_DELAY);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
    this.setState('closed', wait);
  }

  /** Retries at once if waiting for the next attempt (the network came back, the tab woke). */
  retryNow() {
    if (!this.ws && this.timer) this.connect();
  }

  /** Sends a command; false if the socket is not open (the command is dropped). */
  send(cmd) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(cmd));
    return true;
  }

  setState(state, retryIn) {
    this.state = state;
    this.onState(state, { retryIn, everOpened: this.everOpened });
  }
}
