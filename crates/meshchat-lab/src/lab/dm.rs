//! Direct-message helpers of a [`Lab`]: which host a peer is, the nodes' routing tables, a DM's
//! arrival and states, and what of a message is left in a node's files.

use super::*;
use meshchat_api::{DmState, Event};

impl Lab {
    /// The host whose node has (or last had) peer id `peer`.
    pub fn host_of(&self, peer: &str) -> Option<usize> {
        let st = self.hub.lock();
        st.nodes
            .iter()
            .position(|n| n.peer_id.as_deref() == Some(peer))
    }

    /// Asks each of `nodes` for its routes at once (the requests written back to back, then
    /// the answers collected), in the order of `nodes`.
    pub fn routes_of(&self, nodes: &[usize]) -> Result<Vec<Vec<meshchat_api::Route>>> {
        let deadline = self.deadline(20);
        let mut seqs = Vec::with_capacity(nodes.len());
        for &i in nodes {
            let p = self.procs[i]
                .as_ref()
                .with_context(|| format!("node {i} is not running"))?;
            seqs.push(crate::node::request(
                &self.hub,
                i,
                p,
                &Command::Routes,
                false,
                false,
            )?);
        }
        nodes
            .iter()
            .zip(seqs)
            .map(
                |(&i, seq)| match crate::node::await_reply(&self.hub, i, seq, deadline)? {
                    Event::Routes { routes } => Ok(routes),
                    other => bail!("n{i}: unexpected answer to routes: {other:?}"),
                },
            )
            .collect()
    }

    /// Waits until each of `nodes` has shown (a `dm` event) the DM `id`.
    pub fn wait_dm_shown(&self, nodes: &[usize], id: &str, deadline: Instant) -> Result<()> {
        let ok = self.hub.wait_until(deadline, |st| {
            nodes.iter().all(|&i| st.nodes[i].dms.contains_key(id))
        });
        if ok {
            return Ok(());
        }
        let st = self.hub.lock();
        let missing: Vec<String> = nodes
            .iter()
            .filter(|&&i| !st.nodes[i].dms.contains_key(id))
            .map(|&i| format!("n{i} (running={})", st.nodes[i].running))
            .collect();
        bail!(
            "DM {} not shown by the deadline on {}",
            &id[..id.len().min(16)],
            missing.join(", ")
        )
    }

    /// The `dm_status` states host `i` reported for DM `id`, in order, with the incarnation
    /// that reported each.
    pub fn dm_states(&self, i: usize, id: &str) -> Vec<(DmState, u32)> {
        self.hub.lock().nodes[i]
            .dm_statuses
            .iter()
            .filter(|s| s.id == id)
            .map(|s| (s.state, s.incarnation))
            .collect()
    }

    /// Waits until host `i` reports `state` for its DM `id` in a `dm_status` event; returns
    /// when the lab read that event.
    pub fn wait_dm_state(
        &self,
        i: usize,
        id: &str,
        state: DmState,
        deadline: Instant,
    ) -> Result<Instant> {
        let mut at = None;
        self.hub.wait_until(deadline, |st| {
            at = st.nodes[i]
                .dm_statuses
                .iter()
                .find(|s| s.id == id && s.state == state)
                .map(|s| s.at);
            at.is_some()
        });
        at.with_context(|| {
            format!(
                "n{i}: no dm_status {state} for DM {} by the deadline (states so far: {:?})",
                &id[..id.len().min(16)],
                self.dm_states(i, id)
            )
        })
    }

    /// Every file under host `i`'s run directory (its data dir, whatever the node keeps there,
    /// and the stderr log of each incarnation) whose bytes contain `needle`, and how many files
    /// and bytes were read.
    pub fn files_containing(&self, i: usize, needle: &[u8]) -> Result<(Vec<PathBuf>, usize, u64)> {
        let mut found = Vec::new();
        let (mut files, mut bytes) = (0usize, 0u64);
        let mut stack = vec![self.specs[i].log_dir.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file() {
                    let data = match std::fs::read(&path) {
                        Ok(d) => d,
                        // A file the node removed (a SQLite journal) while we listed.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => {
                            return Err(e).with_context(|| format!("reading {}", path.display()))
                        }
                    };
                    files += 1;
                    bytes += data.len() as u64;
                    if !needle.is_empty() && data.windows(needle.len()).any(|w| w == needle) {
                        found.push(path);
                    }
                }
            }
        }
        found.sort();
        Ok((found, files, bytes))
    }
}
