//! Logging that an attacker cannot grow without bound: the log file is rotated at a size
//! ([`RotatingFile`]), and warnings and errors of other crates are rate-limited per crate
//! ([`RateLimited`]). A peer that misbehaves on purpose (say, thousands of over-limit gossipsub
//! subscriptions) otherwise makes a third-party crate write a line per offence.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::callsite::{DefaultCallsite, Identifier};
use tracing::field::FieldSet;
use tracing::metadata::Kind;
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Size at which the log file is rotated.
pub const MAX_FILE_BYTES: u64 = 10 << 20;
/// Rotated files kept (`meshchat.log.1`, `meshchat.log.2`): the logs take at most
/// `(1 + KEEP) * MAX_FILE_BYTES` plus one line.
pub const KEEP: usize = 2;

/// A log file that, before a write would take it past `max_bytes`, is renamed to `PATH.1` (the
/// older ones shifting to `PATH.2` … `PATH.keep`, the oldest deleted) and started anew.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: File,
    /// Bytes in `file`, counted from its size when opened.
    len: u64,
    /// Lines that could not be written (a full disk) since the last one that could.
    dropped: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let (file, len) = open_append(path)?;
        Ok(Self {
            path: path.to_owned(),
            max_bytes,
            keep,
            state: Mutex::new(State {
                file,
                len,
                dropped: 0,
            }),
        })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&self, state: &mut State) -> io::Result<()> {
        state.file.flush()?;
        let shifted = (1..=self.keep).rev().try_for_each(|n| {
            let from = if n == 1 {
                self.path.clone()
            } else {
                self.rotated(n - 1)
            };
            match fs::rename(&from, self.rotated(n)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        });
        if self.keep == 0 || shifted.is_err() {
            // Keeping the cap matters more than keeping the old lines.
            state.file.set_len(0)?;
            state.len = 0;
            return shifted;
        }
        (state.file, state.len) = open_append(&self.path)?;
        Ok(())
    }
}

/// Appends `buf` whole, or nothing: a part written before the disk filled is cut off again.
fn append_whole(state: &mut State, buf: &[u8]) -> bool {
    match state.file.write_all(buf) {
        Ok(()) => {
            state.len += buf.len() as u64;
            true
        }
        Err(_) => {
            let _ = state.file.set_len(state.len);
            false
        }
    }
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

/// One event's write to a [`RotatingFile`] (the file stays locked until it is dropped).
pub struct RotatingWriter<'a> {
    file: &'a RotatingFile,
    state: MutexGuard<'a, State>,
}

/// A line that could not be written (a full disk) is dropped whole, counted, and said once
/// writing works again; the writer never reports the failure. (tracing's formatter would print
/// each failure to stderr, which is the terminal the UI draws on, and the node must go on
/// relaying whatever the log does.)
impl Write for RotatingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let state = &mut *self.state;
        if state.len > 0 && state.len + buf.len() as u64 > self.file.max_bytes {
            // On failure the lines go on into the current file (rotation truncates it when the
            // old ones cannot be shifted, so the cap holds).
            let _ = self.file.rotate(state);
        }
        if state.dropped > 0 {
            let note = format!(
                "{} log lines were dropped: the disk was full\n",
                state.dropped
            );
            if append_whole(state, note.as_bytes()) {
                state.dropped = 0;
            }
        }
        if !append_whole(state, buf) {
            state.dropped += 1;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.state.file.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = RotatingWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        RotatingWriter {
            file: self,
            state: self.state.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Lines let through per crate and window before the rest are suppressed.
pub const LINES_PER_WINDOW: u32 = 20;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Crates counted separately; past that, the others share one count.
const MAX_CRATES: usize = 64;
/// Where the summaries of suppressed lines come from.
const SUMMARY_TARGET: &str = "meshchat::log";

/// Wraps the layer that writes log lines (`inner`) and lets through at most `limit` warnings and
/// errors per other crate (events whose target is not `meshchat…`) per `window`. When a crate's
/// window ends with lines suppressed, the next line to pass (from any crate) is preceded by one
/// summary: `suppressed K warnings and errors from CRATE in the last …`.
pub struct RateLimited<L> {
    inner: L,
    limit: u32,
    window: Duration,
    clock: Box<dyn Fn() -> Instant + Send + Sync>,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// By crate (the target up to its first `::`); at most [`MAX_CRATES`] entries.
    by_crate: HashMap<String, Window>,
    /// Crates whose window has suppressed lines, waiting for a summary.
    pending: usize,
}

struct Window {
    start: Instant,
    passed: u32,
    suppressed: u64,
}

impl<L> RateLimited<L> {
    pub fn new(inner: L) -> Self {
        Self::with_clock(inner, LINES_PER_WINDOW, WINDOW, Instant::now)
    }

    pub fn with_clock(
        inner: L,
        limit: u32,
        window: Duration,
        clock: impl Fn() -> Instant + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            limit,
            window,
            clock: Box::new(clock),
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Counts `meta`'s event: whether it passes, and the summaries of windows that ended with
    /// lines suppressed (crate, lines, window length).
    fn admit(&self, meta: &Metadata<'_>) -> (bool, Vec<(String, u64, Duration)>) {
        let limited = *meta.level() <= Level::WARN && !meta.target().starts_with("meshchat");
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if !limited && counts.pending == 0 {
            return (true, Vec::new());
        }
        let now = (self.clock)();
        let mut summaries = Vec::new();
        if counts.pending > 0 {
            for (name, w) in counts.by_crate.iter_mut() {
                if w.suppressed > 0 && now.duration_since(w.start) >= self.window {
                    summaries.push((name.clone(), w.suppressed, now.duration_since(w.start)));
                    w.suppressed = 0;
                }
            }
            counts.pending -= summaries.len();
        }
        if !limited {
            return (true, summaries);
        }
        let name = meta.target().split("::").next().unwrap_or_default();
        let name = if counts.by_crate.contains_key(name) || counts.by_crate.len() < MAX_CRATES {
            name
        } else {
            "(other crates)"
        };
        let w = counts.by_crate.entry(name.to_owned()).or_insert(Window {
            start: now,
            passed: 0,
            suppressed: 0,
        });
        if now.duration_since(w.start) >= self.window {
            // The summary of this window, if it suppressed lines, was taken above.
            w.start = now;
            w.passed = 0;
        }
        if w.passed < self.limit {
            w.passed += 1;
            return (true, summaries);
        }
        w.suppressed += 1;
        if w.suppressed == 1 {
            counts.pending += 1;
        }
        (false, summaries)
    }
}

/// The summary of suppressed lines: a callsite of its own so that it can be handed to the inner
/// layer as an ordinary event (emitting it with `tracing::warn!` from inside the subscriber would
/// re-enter it). Built the way tracing's own macros build a call site.
static SUMMARY_CALLSITE: DefaultCallsite = DefaultCallsite::new(&SUMMARY_META);
static SUMMARY_META: Metadata<'static> = Metadata::new(
    "log lines suppressed",
    SUMMARY_TARGET,
    Level::WARN,
    Some(file!()),
    Some(line!()),
    Some(module_path!()),
    FieldSet::new(&["message"], Identifier(&SUMMARY_CALLSITE)),
    Kind::EVENT,
);

impl<S, L> Layer<S> for RateLimited<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let (pass, summaries) = self.admit(event.metadata());
        for (name, n, over) in summaries {
            let fields = SUMMARY_META.fields();
            let Some(message) = fields.field("message") else {
                continue;
            };
            let text = format!(
                "suppressed {n} warnings and errors from {name} in the last {:.1}s \
                 (at most {} a {:?} are logged)",
                over.as_secs_f64(),
                self.limit,
                self.window
            );
            let text = text.as_str();
            let values = [(&message, Some(&text as &dyn tracing::Value))];
            let values = fields.value_set(&values);
            self.inner
                .on_event(&Event::new(&SUMMARY_META, &values), ctx.clone());
        }
        if pass {
            self.inner.on_event(event, ctx);
        }
    }

    // The rest is the inner layer's.
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }
    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }
    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.inner.max_level_hint()
    }
    fn on_record(&self, span: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }
    fn on_follows_from(&self, span: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }
    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }
    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }
    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }
    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }
    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    fn dir_size(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn rotating_file_caps_the_total_size() {
        const MAX: u64 = 64 << 10;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meshchat.log");
        let log = RotatingFile::open(&path, MAX, 2).unwrap();
        let line = format!("{}\n", "x".repeat(99));
        // 8 MB, 128 times what may be kept.
        for _ in 0..80_000 {
            use tracing_subscriber::fmt::MakeWriter;
            log.make_writer().write_all(line.as_bytes()).unwrap();
        }
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["meshchat.log", "meshchat.log.1", "meshchat.log.2"]);
        assert!(dir_size(dir.path()) <= 3 * MAX, "{}", dir_size(dir.path()));
        for n in &names {
            let len = fs::metadata(dir.path().join(n)).unwrap().len();
            assert!(
                len <= MAX && len.is_multiple_of(100),
                "{n}: {len}: lines stay whole"
            );
        }
        // Reopening goes on counting from the file's size.
        drop(log);
        let log = RotatingFile::open(&path, MAX, 2).unwrap();
        for _ in 0..1000 {
            use tracing_subscriber::fmt::MakeWriter;
            log.make_writer().write_all(line.as_bytes()).unwrap();
        }
        assert!(dir_size(dir.path()) <= 3 * MAX);
    }

    /// A full disk (here `/dev/full`, which fails every write with ENOSPC): no error reaches
    /// tracing (which would print it on the terminal), no half line is left, and once writing
    /// works the log says how many lines were lost.
    #[test]
    fn a_full_disk_drops_lines_whole_and_says_so_after() {
        use tracing_subscriber::fmt::MakeWriter;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meshchat.log");
        let log = RotatingFile::open(&path, 1 << 20, 2).unwrap();
        log.make_writer().write_all(b"before\n").unwrap();
        let file = std::mem::replace(
            &mut log.state.lock().unwrap().file,
            OpenOptions::new().append(true).open("/dev/full").unwrap(),
        );
        for i in 0..5 {
            let line = format!("while full {i}\n");
            log.make_writer().write_all(line.as_bytes()).unwrap();
        }
        log.state.lock().unwrap().file = file;
        log.make_writer().write_all(b"after\n").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "before\n5 log lines were dropped: the disk was full\nafter\n"
        );
    }

    #[test]
    fn rotating_file_with_nothing_kept_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let log = RotatingFile::open(&path, 1000, 0).unwrap();
        for _ in 0..100 {
            use tracing_subscriber::fmt::MakeWriter;
            log.make_writer().write_all(&[b'y'; 99]).unwrap();
        }
        assert!(fs::metadata(&path).unwrap().len() <= 1000);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// What the layer writes, shared with the test.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines().map(str::to_owned).collect()
        }
    }

    #[test]
    fn rate_limit_drops_excess_lines_and_summarizes_them() {
        let capture = Capture::default();
        let writer = capture.clone();
        let t0 = Instant::now();
        let now = Arc::new(Mutex::new(t0));
        let clock = now.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone());
        let subscriber = tracing_subscriber::registry().with(RateLimited::with_clock(
            fmt,
            5,
            Duration::from_secs(1),
            move || *clock.lock().unwrap(),
        ));
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1000 {
                tracing::error!(target: "libp2p_gossipsub::behaviour", "flood {i}");
                tracing::warn!(target: "other_crate", "other {i}");
            }
            // Infos of other crates and our own lines are not limited.
            for i in 0..50 {
                tracing::info!(target: "libp2p_gossipsub", "info {i}");
                tracing::error!(target: "meshchat_node::node", "ours {i}");
            }
            let lines = capture.lines();
            assert_eq!(lines.iter().filter(|l| l.contains("flood")).count(), 5);
            assert_eq!(lines.iter().filter(|l| l.contains("other ")).count(), 5);
            assert_eq!(lines.iter().filter(|l| l.contains("info")).count(), 50);
            assert_eq!(lines.iter().filter(|l| l.contains("ours")).count(), 50);
            assert!(!lines.iter().any(|l| l.contains("suppressed")));

            // A second later the next line brings the summaries, and a new window opens.
            *now.lock().unwrap() = t0 + Duration::from_millis(1500);
            for i in 0..10 {
                tracing::error!(target: "libp2p_gossipsub::behaviour", "again {i}");
            }
            let lines = capture.lines();
            let summaries: Vec<_> = lines.iter().filter(|l| l.contains("suppressed")).collect();
            assert_eq!(summaries.len(), 2, "{summaries:?}");
            assert!(summaries.iter().any(|l| l
                .contains("suppressed 995 warnings and errors from libp2p_gossipsub")
                && l.contains("WARN meshchat::log")));
            assert!(summaries
                .iter()
                .any(|l| l.contains("suppressed 995 warnings and errors from other_crate")));
            assert_eq!(lines.iter().filter(|l| l.contains("again")).count(), 5);
        });
    }

    #[test]
    fn rate_limit_counts_at_most_so_many_crates() {
        // Targets bridged from the `log` crate are not static: any number may come.
        let limit = RateLimited::with_clock((), 1, WINDOW, Instant::now);
        for i in 0..1000 {
            let target = format!("crate{i}::module");
            let meta = Metadata::new(
                "event",
                &target,
                Level::WARN,
                None,
                None,
                None,
                FieldSet::new(&[], Identifier(&SUMMARY_CALLSITE)),
                Kind::EVENT,
            );
            let (pass, _) = limit.admit(&meta);
            assert_eq!(pass, i <= MAX_CRATES, "{i}");
        }
        let counts = limit.counts.lock().unwrap();
        assert_eq!(counts.by_crate.len(), MAX_CRATES + 1);
        assert_eq!(counts.by_crate["(other crates)"].suppressed, 1000 - 65);
    }
}
