//! The main loop's calls to BIRD: apply the config of the spec and the span, and read the
//! sessions back.

use std::sync::Arc;

use gingham_crds::api::NodeNetworkSpec;
use gingham_crds::api::span::NodeSpan;

use super::Agent;
use crate::bird;
use crate::dataplane::Dataplane;
use crate::datastore::StatusSink;

impl<D: Dataplane, S: StatusSink> Agent<D, S> {
    /// Applies BIRD's config: the spec's BGP settings with the span's sessions. A session whose
    /// values BIRD would refuse is left out, reported in status and logged; the node's other
    /// sessions are programmed, and BIRD starts with them on a node where it does not run yet.
    /// While the span is not known BIRD is left as it is: a config without sessions would drop
    /// every session of a BIRD an earlier agent left running.
    pub(super) async fn apply_bird(&mut self, spec: &NodeNetworkSpec, span: Option<Arc<NodeSpan>>) {
        let Some(bird) = &mut self.bird else { return };
        let mut left_out = Vec::new();
        let outcome = match (&spec.bgp, span) {
            (Some(_), None) => return,
            (Some(bgp), Some(span)) => match bird::BirdConfig::decode(&self.options.node, spec, bgp, &span.bgp_peers) {
                Ok((config, invalid)) => {
                    let (rejected, outcome) = bird.apply_config(config).await;
                    left_out.extend(invalid.into_iter().chain(rejected));
                    outcome
                }
                Err(error) => Err(error),
            },
            (None, _) => {
                bird.stop().await;
                self.state.sessions.clear();
                Ok(false)
            }
        };
        let left_out: Vec<String> = left_out.iter().map(ToString::to_string).collect();
        for message in left_out.iter().filter(|m| !self.state.bird_left_out.contains(m)) {
            tracing::warn!(%message, "BGP session not programmed");
            self.services.metrics.error("bird", "session_left_out");
        }
        self.state.bird_left_out = left_out;
        if let Ok(true) = outcome {
            self.state.bird_sessions_stale = true;
        }
        if let Err(error) = &outcome {
            if self.state.bird_apply_error.as_deref() != Some(&error.to_string()) {
                tracing::warn!(%error, "BIRD config not applied");
            }
            self.services.metrics.error("bird", error.label());
        }
        self.state.bird_apply_error = outcome.err().map(|e| e.to_string());
    }

    /// Restarts an exited BIRD (with backoff) and reads its sessions.
    pub(super) async fn refresh_bird(&mut self) {
        let Some(bird) = &mut self.bird else { return };
        if let Err(error) = bird.poll() {
            tracing::warn!(%error, "BIRD");
            if matches!(error, bird::BirdError::Exited { .. }) {
                self.services.metrics.bird_exits.inc();
            }
            self.state.bird_exit_error = Some(error.to_string());
        }
        if bird.pid().is_none() {
            return;
        }
        let peers = self.state.span.as_ref().map(|span| span.bgp_peers.as_slice());
        match bird.paths().birdc(&["show", "protocols"]).await {
            Ok(output) => {
                self.state.sessions = bird::parse_protocols(&output, peers.unwrap_or_default());
                self.state.bird_exit_error = None;
                bird.settle();
                let established = self.state.sessions.iter().filter(|s| bird::is_established(s)).count();
                self.services.metrics.sessions(established, self.state.sessions.len());
            }
            Err(error) => tracing::debug!(%error, "BIRD does not answer yet"),
        }
    }
}
