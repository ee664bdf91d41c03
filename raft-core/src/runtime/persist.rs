//! The hard-state writer: one task that makes term, vote and commit durable off the event loop.
//! Writes queued behind a slow one are coalesced into the newest (terms and votes only move
//! forward, so the newest durable one answers every earlier request).

use std::sync::Arc;

use tokio::sync::mpsc;

use super::events::Event;
use crate::storage::LogStore;
use crate::types::HardState;

pub(crate) async fn write_hard_states(
    log: Arc<dyn LogStore>,
    mut requests: mpsc::UnboundedReceiver<HardState>,
    events: mpsc::UnboundedSender<Event>,
) {
    while let Some(mut hard_state) = requests.recv().await {
        while let Ok(newer) = requests.try_recv() {
            hard_state = newer;
        }
        match log.save_hard_state(hard_state).await {
            Ok(()) => {
                let _ = events.send(Event::HardStatePersisted(hard_state));
            }
            Err(err) => {
                let _ = events.send(Event::Failed(err));
                return;
            }
        }
    }
}
