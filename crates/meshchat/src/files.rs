//! What the terminal interfaces show of file transfers: the short numbers people type
//! (`/accept 3`) in place of 64-hex offer ids, the rate and time left of each transfer, and
//! the lines and bars that say so. The node's file events are the typed API's
//! (`meshchat_api::Event::File*`), shared with JSON mode and the web UI.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use meshchat_api::{File, FileState};
use meshchat_core::room::human_size;

use crate::output::{short_peer, visible_name, visible_text};

/// Offer ids given a number and still remembered; older numbers are forgotten.
const REMEMBERED: usize = 1000;
/// Transfers whose rate is measured at once.
const METERED: usize = 64;

/// Short numbers for offer ids: the first time an id is seen it gets the next number.
#[derive(Debug, Default)]
pub struct Numbers {
    ids: VecDeque<(usize, String)>,
    next: usize,
}

impl Numbers {
    /// The number of `id`, given now if it has none.
    pub fn number(&mut self, id: &str) -> usize {
        if let Some((n, _)) = self.ids.iter().find(|(_, i)| i == id) {
            return *n;
        }
        self.next += 1;
        if self.ids.len() >= REMEMBERED {
            self.ids.pop_front();
        }
        self.ids.push_back((self.next, id.to_owned()));
        self.next
    }

    /// The offer id numbered `n`.
    pub fn id(&self, n: usize) -> Option<&str> {
        self.ids
            .iter()
            .find(|(m, _)| *m == n)
            .map(|(_, id)| id.as_str())
    }
}

/// A transfer's rate (bytes a second, smoothed) and so its time left.
#[derive(Debug, Default)]
pub struct Meters {
    meters: HashMap<String, Meter>,
}

#[derive(Debug, Clone, Copy)]
struct Meter {
    at: Instant,
    bytes: u64,
    rate: f64,
}

impl Meters {
    /// Records `bytes` of `id` now; returns its rate in bytes a second (0 at first).
    pub fn update(&mut self, id: &str, bytes: u64, now: Instant) -> f64 {
        if !self.meters.contains_key(id) && self.meters.len() >= METERED {
            // The one heard from longest ago goes.
            if let Some(old) = self
                .meters
                .iter()
                .min_by_key(|(_, m)| m.at)
                .map(|(k, _)| k.clone())
            {
                self.meters.remove(&old);
            }
        }
        let m = self.meters.entry(id.to_owned()).or_insert(Meter {
            at: now,
            bytes,
            rate: 0.0,
        });
        let dt = now.saturating_duration_since(m.at).as_secs_f64();
        if dt >= 0.05 && bytes >= m.bytes {
            let sample = (bytes - m.bytes) as f64 / dt;
            m.rate = if m.rate == 0.0 {
                sample
            } else {
                0.7 * m.rate + 0.3 * sample
            };
            m.at = now;
            m.bytes = bytes;
        }
        m.rate
    }

    /// Forgets a finished transfer.
    pub fn done(&mut self, id: &str) {
        self.meters.remove(id);
    }
}

/// `[#######.....]` for a fraction in 0..=1, `width` cells inside the brackets.
pub fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// `42% 1.0 MiB / 2.2 MiB, 3.1 MiB/s, 0:01 left`.
pub fn progress_text(bytes: u64, total: u64, rate: f64) -> String {
    let pct = bytes
        .saturating_mul(100)
        .checked_div(total)
        .map_or(100, |p| p.min(100));
    let mut out = format!("{pct:>3}% {} / {}", human_size(bytes), human_size(total));
    if rate > 0.0 {
        out.push_str(&format!(", {}/s", human_size(rate as u64)));
        let left = total.saturating_sub(bytes) as f64 / rate;
        if bytes < total && left.is_finite() {
            out.push_str(&format!(", {} left", duration(left as u64)));
        }
    }
    out
}

/// `m:ss`, or `h:mm:ss` from an hour.
fn duration(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// Where an offer was made: `in #room`, `to you`, `to PEER`.
fn place(f: &File) -> String {
    match (&f.room, &f.to, f.own) {
        (Some(room), _, _) => format!("in {}", visible_name(room)),
        (None, Some(to), true) => format!("to {}", short_peer(to)),
        _ => "to you".to_owned(),
    }
}

/// `[file 3] alice (0a1b 2c3d) offers photo.jpg (2.2 MiB) in lobby — /accept 3`.
pub fn offer_line(n: usize, f: &File) -> String {
    format!(
        "[file {n}] {} ({}) offers {} ({}) {} — /accept {n}",
        visible_name(&f.nick),
        short_fingerprint(&f.fingerprint),
        visible_name(&f.name),
        human_size(f.size),
        place(f),
    )
}

/// One line of `/files`: number, state, name, size, where, progress or path.
pub fn list_line(n: usize, f: &File) -> String {
    let state = match f.state {
        FileState::Offered => "offered".to_owned(),
        FileState::Downloading => format!(
            "downloading {}",
            progress_text(f.bytes, f.size, 0.0).trim_start()
        ),
        FileState::Done => "done".to_owned(),
        FileState::Failed => format!(
            "failed: {}",
            visible_text(f.reason.as_deref().unwrap_or("?"))
        ),
        FileState::Cancelled => "cancelled".to_owned(),
        FileState::Serving => "offered by you".to_owned(),
    };
    let who = if f.own {
        String::new()
    } else {
        format!(" from {}", visible_name(&f.nick))
    };
    let path = f
        .path
        .as_deref()
        .filter(|_| matches!(f.state, FileState::Done | FileState::Serving))
        .map(|p| format!(" — {}", visible_text(p)))
        .unwrap_or_default();
    format!(
        "[file {n}] {} ({}){who} {}: {state}{path}",
        visible_name(&f.name),
        human_size(f.size),
        place(f),
    )
}

/// The first two groups of a fingerprint, as messages show it.
fn short_fingerprint(fp: &str) -> String {
    fp.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn numbers_are_given_once_and_remembered() {
        let mut n = Numbers::default();
        assert_eq!(n.number("a"), 1);
        assert_eq!(n.number("b"), 2);
        assert_eq!(n.number("a"), 1);
        assert_eq!(n.id(2), Some("b"));
        assert_eq!(n.id(3), None);
        for i in 0..REMEMBERED {
            n.number(&i.to_string());
        }
        assert_eq!(n.id(1), None, "the oldest are forgotten");
    }

    #[test]
    fn progress_says_rate_and_time_left() {
        let mut m = Meters::default();
        let t = Instant::now();
        assert_eq!(m.update("x", 0, t), 0.0);
        let rate = m.update("x", 1024 * 1024, t + Duration::from_secs(1));
        assert!((rate - 1048576.0).abs() < 1.0);
        assert_eq!(
            progress_text(1024 * 1024, 4 * 1024 * 1024, rate),
            " 25% 1.0 MiB / 4.0 MiB, 1.0 MiB/s, 0:03 left"
        );
        assert_eq!(bar(0.5, 10), "[#####.....]");
        assert_eq!(duration(3725), "1:02:05");
    }
}
