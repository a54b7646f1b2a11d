//! The tracker (issue 12): wires [`meshchat_core::election`] to the broadcast trees (flooded
//! election messages and heartbeats), routed envelopes (registrations, rosters, replies), the
//! routing table (who is reachable) and the front-end. Being built: until it is, tracker
//! envelopes are relayed and counted, not acted on.

use meshchat_core::Envelope;

use super::Actor;

impl Actor {
    /// A checked tracker envelope, flooded on the trees or routed to us.
    pub(super) fn on_tracker_envelope(&mut self, env: Envelope, flooded: bool) {
        let _ = (env, flooded);
        self.stats.relayed_unknown += 1;
    }
}
