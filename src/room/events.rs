//! What happens in this node's rooms, for monitors (the admin event stream,
//! `GET /admin/v1/events`): rooms opening and closing, participants joining
//! and leaving, tracks published and withdrawn.
//!
//! The rooms publish on a tokio `broadcast` channel: sending never waits
//! and never fails, whoever listens and however slowly. A listener that
//! falls more than [`CAPACITY`] events behind finds out on its next receive
//! (`Lagged`); the admin stream then drops that monitor.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use signaling::TrackInfo;
use tokio::sync::broadcast;

/// Events kept for the slowest listener.
pub const CAPACITY: usize = 1024;

/// One thing that happened in a room of this node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum RoomEvent {
    /// The room opened on this node (its first participant joined).
    #[serde(rename_all = "camelCase")]
    RoomOpened {
        /// Room.
        room: String,
    },
    /// The room closed: empty, closed by an administrator, or moved to
    /// another node.
    #[serde(rename_all = "camelCase")]
    RoomClosed {
        /// Room.
        room: String,
    },
    /// A participant joined (a reconnecting participant that replaces its
    /// older connection is not a new one).
    #[serde(rename_all = "camelCase")]
    ParticipantJoined {
        /// Room.
        room: String,
        /// Who.
        participant_id: String,
        /// Display name.
        username: String,
    },
    /// A participant left (or was removed).
    #[serde(rename_all = "camelCase")]
    ParticipantLeft {
        /// Room.
        room: String,
        /// Who.
        participant_id: String,
    },
    /// A participant's announced tracks, the complete list, whenever it
    /// changes while it publishes.
    #[serde(rename_all = "camelCase")]
    TracksPublished {
        /// Room.
        room: String,
        /// The publisher.
        participant_id: String,
        /// Its tracks as the room sees them (muted tracks left out).
        tracks: Vec<TrackInfo>,
    },
    /// A participant stopped publishing (unpublished, left, or every track
    /// of it is muted).
    #[serde(rename_all = "camelCase")]
    TracksUnpublished {
        /// Room.
        room: String,
        /// The publisher.
        participant_id: String,
    },
}

impl RoomEvent {
    /// The room the event is about.
    pub fn room(&self) -> &str {
        match self {
            RoomEvent::RoomOpened { room }
            | RoomEvent::RoomClosed { room }
            | RoomEvent::ParticipantJoined { room, .. }
            | RoomEvent::ParticipantLeft { room, .. }
            | RoomEvent::TracksPublished { room, .. }
            | RoomEvent::TracksUnpublished { room, .. } => room,
        }
    }
}

/// An event and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stamped {
    /// The event (its fields are flattened into this object).
    #[serde(flatten)]
    pub event: RoomEvent,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
}

/// Where the rooms publish their events.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Stamped>>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        EventBus { tx }
    }
}

impl EventBus {
    /// Publishes an event to whoever listens now; never waits.
    pub fn emit(&self, event: RoomEvent) {
        // Nobody listening is the usual case: not an error.
        let _ = self.tx.send(Arc::new(Stamped {
            event,
            ts: now_ms(),
        }));
    }

    /// A new listener: it receives what is emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Stamped>> {
        self.tx.subscribe()
    }

    /// Listeners now.
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_flat_with_a_timestamp() {
        let e = Stamped {
            event: RoomEvent::ParticipantJoined {
                room: "r".into(),
                participant_id: "7".into(),
                username: "ann".into(),
            },
            ts: 5,
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"type":"participant-joined","room":"r","participantId":"7","username":"ann","ts":5})
        );
    }

    #[tokio::test]
    async fn a_listener_that_falls_behind_learns_it_and_the_sender_never_waits() {
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        for i in 0..CAPACITY + 10 {
            bus.emit(RoomEvent::RoomOpened {
                room: i.to_string(),
            });
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
        assert_eq!(bus.listeners(), 1);
    }
}
