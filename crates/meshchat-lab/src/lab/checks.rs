//! Outcome checks of a [`Lab`]: every node has the messages, none was shown twice, the
//! histories agree, and every process is healthy.

use super::*;

impl Lab {
    /// Waits until every running node has shown every message in `ids`.
    pub fn wait_all_have(&self, ids: &[String], deadline: Instant) -> Result<()> {
        let running = self.running();
        self.wait_nodes_have(&running, ids, deadline)
    }

    /// Waits until each of `nodes` has shown every message in `ids`.
    pub fn wait_nodes_have(
        &self,
        nodes: &[usize],
        ids: &[String],
        deadline: Instant,
    ) -> Result<()> {
        let ok = self.hub.wait_until(deadline, |st| {
            nodes
                .iter()
                .all(|&i| ids.iter().all(|id| st.nodes[i].received.contains_key(id)))
        });
        if ok {
            return Ok(());
        }
        let st = self.hub.lock();
        let mut lines = Vec::new();
        for &i in nodes {
            let missing: Vec<&String> = ids
                .iter()
                .filter(|id| !st.nodes[i].received.contains_key(*id))
                .collect();
            if let Some(first) = missing.first() {
                let from = st.sent.get(*first).map(|s| s.node);
                lines.push(format!(
                    "n{i} misses {} of {} (e.g. {} sent by {:?}); running={}",
                    missing.len(),
                    ids.len(),
                    &first[..first.len().min(16)],
                    from,
                    st.nodes[i].running
                ));
            }
        }
        bail!(
            "messages not delivered by the deadline:\n  {}",
            lines.join("\n  ")
        )
    }

    /// How long message `id` took from its send to its showing on host `node` (both read by the
    /// lab as they happened), if it was shown there.
    pub fn delivery_time(&self, id: &str, node: usize) -> Option<Duration> {
        let st = self.hub.lock();
        let sent = st.sent.get(id)?.at;
        let got = st.nodes[node].received.get(id)?.at;
        Some(got.saturating_duration_since(sent))
    }

    /// Fails if any node showed any message id more than once (across restarts too).
    pub fn check_no_duplicates(&self) -> Result<()> {
        no_duplicates(&self.hub.lock())
    }

    /// Ids of the non-probe messages the lab sent (optionally only those from `senders`).
    pub fn sent_ids(&self, senders: Option<&[usize]>) -> Vec<String> {
        let st = self.hub.lock();
        let mut ids: Vec<(Instant, String)> = st
            .sent
            .iter()
            .filter(|(_, s)| !s.probe && senders.is_none_or(|ss| ss.contains(&s.node)))
            .map(|(id, s)| (s.at, id.clone()))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Ids host `i` has shown so far.
    pub fn shown_ids(&self, i: usize) -> HashSet<String> {
        self.hub.lock().nodes[i].received.keys().cloned().collect()
    }

    /// Checks the stored histories of `nodes` in `room`: no id twice, each contains `must_have`,
    /// each contains everything the node has shown in that room, and restricted to messages
    /// the lab sent (probes excluded) all are identical. Returns the histories.
    pub fn check_histories(
        &self,
        room: &str,
        nodes: &[usize],
        must_have: &[String],
    ) -> Result<BTreeMap<usize, Vec<Message>>> {
        let limit = self.hub.lock().sent.len() + 1000;
        let mut all = BTreeMap::new();
        let mut problems = Vec::new();
        let mut reference: Option<(usize, Vec<String>)> = None;
        for &i in nodes {
            let hist = self.node(i).history(room, limit)?;
            let lab_ids =
                history_problems(&self.hub.lock(), i, room, &hist, must_have, &mut problems);
            match &reference {
                None => reference = Some((i, lab_ids)),
                Some((r, ref_ids)) if *ref_ids != lab_ids => problems.push(format!(
                    "n{i}: history ({} lab messages) differs from n{r}'s ({})",
                    lab_ids.len(),
                    ref_ids.len()
                )),
                Some(_) => {}
            }
            all.insert(i, hist);
        }
        if !problems.is_empty() {
            bail!("history check failed:\n  {}", problems.join("\n  "));
        }
        Ok(all)
    }

    /// Fails if a node exited in a way the lab did not cause, printed a panic to stderr, or
    /// wrote non-JSON lines to stdout.
    pub fn check_health(&self) -> Result<()> {
        let st = self.hub.lock();
        let problems = health_problems(&st, |i| {
            (
                self.specs[i].log_dir.clone(),
                self.specs[i].data_dir.clone(),
            )
        });
        if !problems.is_empty() {
            bail!("unhealthy nodes:\n  {}", problems.join("\n  "));
        }
        Ok(())
    }
}

/// [`Lab::check_no_duplicates`] over the events read so far.
fn no_duplicates(st: &HubState) -> Result<()> {
    let dups: Vec<String> = st
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.duplicates.is_empty())
        .map(|(i, n)| {
            format!(
                "n{i} showed {} ids again (first: {} in incarnation {})",
                n.duplicates.len(),
                n.duplicates[0].0,
                n.duplicates[0].1
            )
        })
        .collect();
    let dm_dups: Vec<String> = st
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.dm_duplicates.is_empty())
        .map(|(i, n)| {
            format!(
                "n{i} showed {} DM ids again (first: {} in incarnation {})",
                n.dm_duplicates.len(),
                n.dm_duplicates[0].0,
                n.dm_duplicates[0].1
            )
        })
        .collect();
    if !dups.is_empty() || !dm_dups.is_empty() {
        bail!(
            "duplicate message events:\n  {}",
            dups.into_iter()
                .chain(dm_dups)
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    Ok(())
}

/// What is wrong with host `i`'s history `hist` of `room` (pushed onto `problems`): an id
/// twice, one of `must_have` missing, a message shown but not stored. Returns the ids in it
/// of the (non-probe) messages the lab sent, sorted, to compare with other nodes'.
fn history_problems(
    st: &HubState,
    i: usize,
    room: &str,
    hist: &[Message],
    must_have: &[String],
    problems: &mut Vec<String>,
) -> Vec<String> {
    let ids: Vec<&String> = hist.iter().map(|m| &m.id).collect();
    let set: HashSet<&String> = ids.iter().copied().collect();
    if set.len() != ids.len() {
        problems.push(format!("n{i}: history lists an id twice"));
    }
    let missing = must_have.iter().filter(|id| !set.contains(id)).count();
    if missing > 0 {
        problems.push(format!("n{i}: history misses {missing} required messages"));
    }
    let shown_not_stored = st.nodes[i]
        .received
        .values()
        .filter(|r| r.msg.room == room && !set.contains(&r.msg.id))
        .count();
    if shown_not_stored > 0 {
        problems.push(format!(
            "n{i}: {shown_not_stored} messages were shown but are not in history"
        ));
    }
    let mut lab_ids: Vec<String> = ids
        .iter()
        .filter(|id| st.sent.get(**id).is_some_and(|s| !s.probe))
        .map(|id| (*id).clone())
        .collect();
    lab_ids.sort();
    lab_ids
}

/// [`Lab::check_health`]'s findings: exits the lab did not cause, lines that are not events,
/// panics in the stderr logs (`stderr.N.log` in the log dir `dirs(host)` names) or in a log
/// file the node keeps in its data dir (the second path).
fn health_problems(st: &HubState, dirs: impl Fn(usize) -> (PathBuf, PathBuf)) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, n) in st.nodes.iter().enumerate() {
        let (log_dir, data_dir) = dirs(i);
        let stderr = |inc: u32| log_dir.join(format!("stderr.{inc}.log"));
        for e in n.exits.iter().filter(|e| !e.is_clean()) {
            problems.push(format!(
                "n{i} incarnation {} exited with code {:?} signal {:?} (lab expected {:?}); stderr: {}",
                e.incarnation,
                e.code,
                e.signal,
                e.expect,
                stderr(e.incarnation).display()
            ));
        }
        if n.bad_lines > 0 {
            problems.push(format!(
                "n{i} wrote {} stdout lines that are not valid events, first: {:?}",
                n.bad_lines, n.first_bad_line
            ));
        }
        let mut logs: Vec<PathBuf> = (0..=n.incarnation).map(stderr).collect();
        if let Ok(dir) = std::fs::read_dir(&data_dir) {
            logs.extend(
                dir.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "log")),
            );
        }
        for log in logs {
            if let Ok(text) = std::fs::read_to_string(&log) {
                if let Some(line) = text.lines().find(|l| l.contains("panicked")) {
                    problems.push(format!("n{i} panicked ({}): {line}", log.display()));
                }
            }
        }
    }
    problems
}

/// The checks against a misbehaving node, with events crafted here (the real node does not
/// misbehave on request): each check catches the failure it is meant to catch, as read through
/// the same bookkeeping the reader threads use.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{on_event, Exit, Expect, NodeState};
    use meshchat_api::{DirectMessage, Event};

    fn hub(n: usize) -> HubState {
        let mut st = HubState::default();
        st.nodes = (0..n).map(|_| NodeState::default()).collect();
        st
    }

    fn message(id: &str) -> Message {
        Message {
            room: LOBBY.into(),
            id: id.into(),
            from: "p0".into(),
            fingerprint: "f".into(),
            nick: "n0".into(),
            ts: 1,
            text: "hello".into(),
            own: false,
            synced: false,
            seq: 0,
            private: None,
        }
    }

    #[test]
    fn messages_shown_twice_are_caught() {
        let mut st = hub(3);
        let at = Instant::now();
        for i in 0..3 {
            on_event(&mut st, i, 0, Event::Message(message("m1")), at);
        }
        no_duplicates(&st).unwrap();
        // Node 1 shows it again after a restart (incarnation 1).
        on_event(&mut st, 1, 1, Event::Message(message("m1")), at);
        let err = no_duplicates(&st).unwrap_err().to_string();
        assert!(
            err.contains("duplicate")
                && err.contains("n1 showed 1 ids again (first: m1 in incarnation 1)"),
            "{err}"
        );
        let mut st = hub(1);
        let dm = DirectMessage {
            id: "d1".into(),
            from: "p0".into(),
            to: "p1".into(),
            fingerprint: "f".into(),
            nick: "n0".into(),
            ts: 1,
            text: "psst".into(),
            own: false,
            state: None,
        };
        on_event(&mut st, 0, 0, Event::Dm(dm.clone()), at);
        on_event(&mut st, 0, 0, Event::Dm(dm), at);
        let err = no_duplicates(&st).unwrap_err().to_string();
        assert!(err.contains("n0 showed 1 DM ids again"), "{err}");
    }

    #[test]
    fn messages_shown_but_not_stored_are_caught() {
        let mut st = hub(2);
        let at = Instant::now();
        for i in 0..2 {
            on_event(&mut st, i, 0, Event::Message(message("m1")), at);
        }
        let must = ["m1".to_owned()];
        let mut problems = Vec::new();
        history_problems(&st, 0, LOBBY, &[message("m1")], &must, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        // Node 1 showed m1 but its history lacks it (it did not store it).
        history_problems(&st, 1, LOBBY, &[], &must, &mut problems);
        let all = problems.join("; ");
        assert!(
            all.contains("n1: history misses 1 required messages")
                && all.contains("n1: 1 messages were shown but are not in history"),
            "{all}"
        );
        let mut problems = Vec::new();
        let twice = [message("m1"), message("m1")];
        history_problems(&st, 0, LOBBY, &twice, &must, &mut problems);
        assert_eq!(problems, ["n0: history lists an id twice"]);
    }

    #[test]
    fn crashes_panics_and_bad_output_are_caught() {
        let dir = std::env::temp_dir().join(format!("meshchat-lab-checks-{}", std::process::id()));
        let (logs, data) = (dir.join("n0"), dir.join("n0/data"));
        std::fs::create_dir_all(&data).unwrap();
        let dirs = |_| (logs.clone(), data.clone());
        let mut st = hub(1);
        let exit = |code, signal, expect| Exit {
            incarnation: 0,
            code,
            signal,
            expect,
        };
        // Exits the lab caused are clean.
        st.nodes[0].exits = vec![
            exit(Some(0), None, Expect::Quit),
            exit(None, Some(15), Expect::Term),
            exit(None, Some(9), Expect::Kill),
        ];
        std::fs::write(logs.join("stderr.0.log"), "INFO all fine\n").unwrap();
        assert!(health_problems(&st, dirs).is_empty());
        // A crash, a panic in the log, a line that is not an event.
        st.nodes[0]
            .exits
            .push(exit(None, Some(11), Expect::Running));
        st.nodes[0].exits.push(exit(Some(1), None, Expect::Quit));
        std::fs::write(
            logs.join("stderr.0.log"),
            "thread 'main' panicked at src/x.rs:1:1:\nboom\n",
        )
        .unwrap();
        st.nodes[0].bad_lines = 1;
        st.nodes[0].first_bad_line = Some("oops".into());
        let all = health_problems(&st, dirs).join("\n");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            all.contains("signal Some(11) (lab expected Running)")
                && all.contains("code Some(1) signal None (lab expected Quit)")
                && all.contains("n0 panicked")
                && all.contains("stdout lines that are not valid events"),
            "{all}"
        );
    }
}
