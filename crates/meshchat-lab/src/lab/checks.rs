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

    /// Fails if any node showed any message id more than once (across restarts too).
    pub fn check_no_duplicates(&self) -> Result<()> {
        let st = self.hub.lock();
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
            let ids: Vec<&String> = hist.iter().map(|m| &m.id).collect();
            let set: HashSet<&String> = ids.iter().copied().collect();
            if set.len() != ids.len() {
                problems.push(format!("n{i}: history lists an id twice"));
            }
            let missing = must_have.iter().filter(|id| !set.contains(id)).count();
            if missing > 0 {
                problems.push(format!("n{i}: history misses {missing} required messages"));
            }
            let shown_not_stored = {
                let st = self.hub.lock();
                st.nodes[i]
                    .received
                    .values()
                    .filter(|r| r.msg.room == room && !set.contains(&r.msg.id))
                    .count()
            };
            if shown_not_stored > 0 {
                problems.push(format!(
                    "n{i}: {shown_not_stored} messages were shown but are not in history"
                ));
            }
            let lab_ids: Vec<String> = {
                let st = self.hub.lock();
                let mut v: Vec<String> = ids
                    .iter()
                    .filter(|id| st.sent.get(**id).is_some_and(|s| !s.probe))
                    .map(|id| (*id).clone())
                    .collect();
                v.sort();
                v
            };
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
        let mut problems = Vec::new();
        let st = self.hub.lock();
        for (i, n) in st.nodes.iter().enumerate() {
            for e in n.exits.iter().filter(|e| !e.is_clean()) {
                problems.push(format!(
                    "n{i} incarnation {} exited with code {:?} signal {:?} (lab expected {:?}); stderr: {}",
                    e.incarnation,
                    e.code,
                    e.signal,
                    e.expect,
                    self.specs[i].log_dir.join(format!("stderr.{}.log", e.incarnation)).display()
                ));
            }
            if n.bad_lines > 0 {
                problems.push(format!(
                    "n{i} wrote {} stdout lines that are not valid events, first: {:?}",
                    n.bad_lines, n.first_bad_line
                ));
            }
            // stderr of every incarnation, and any log file the node keeps in its data dir.
            let mut logs: Vec<PathBuf> = (0..=n.incarnation)
                .map(|inc| self.specs[i].log_dir.join(format!("stderr.{inc}.log")))
                .collect();
            if let Ok(dir) = std::fs::read_dir(&self.specs[i].data_dir) {
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
        if !problems.is_empty() {
            bail!("unhealthy nodes:\n  {}", problems.join("\n  "));
        }
        Ok(())
    }
}
