//! A room's way to one session: the events it sends, and the bounded,
//! byte-budgeted queue they travel on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use signaling::ServerMessage;
use tokio::sync::{mpsc, watch};

use super::budget;

/// What a room tells one session.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// Forward to the client as is.
    Send(ServerMessage),
    /// The same participant joined this room from another connection.
    Replaced {
        /// Room.
        room: String,
    },
    /// This node stopped serving the room (another node holds it now).
    RoomMoved {
        /// Room.
        room: String,
    },
    /// An administrator removed this session's participant from the room
    /// (or closed the room): the session says so and closes.
    Kicked {
        /// Room.
        room: String,
        /// Removed, or the room closed.
        reason: signaling::KickReason,
        /// The administrator's note.
        message: Option<String>,
    },
    /// A subscriber found no media for one of this session's live tracks.
    TrackMissing {
        /// Room.
        room: String,
        /// The track.
        track_id: String,
    },
}

impl SessionEvent {
    /// Bytes this event holds while queued (about its JSON size; a floor
    /// for the bookkeeping of small events).
    pub fn weight(&self) -> usize {
        const FLOOR: usize = 128;
        FLOOR
            + match self {
                SessionEvent::Send(msg) => budget::json_len(msg),
                _ => 0,
            }
    }
}

/// A queued event and the bytes it holds in the session's budget.
#[derive(Debug)]
pub struct Queued {
    /// The event.
    pub event: SessionEvent,
    /// Its [`SessionEvent::weight`], given back when handled.
    pub weight: usize,
}

/// How a room reaches one session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// Unique per connection.
    pub session_id: u64,
    tx: mpsc::Sender<Queued>,
    kill: Arc<watch::Sender<Option<String>>>,
    budget: Arc<budget::ByteBudget>,
}

impl SessionHandle {
    /// Creates a handle and the receiving ends for the session task: at
    /// most `capacity` events, and their bytes count against `budget`.
    pub fn new(
        capacity: usize,
        budget: Arc<budget::ByteBudget>,
    ) -> (
        SessionHandle,
        mpsc::Receiver<Queued>,
        watch::Receiver<Option<String>>,
    ) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let (tx, rx) = mpsc::channel(capacity);
        let (kill, kill_rx) = watch::channel(None);
        (
            SessionHandle {
                session_id: NEXT.fetch_add(1, Ordering::Relaxed),
                tx,
                kill: Arc::new(kill),
                budget,
            },
            rx,
            kill_rx,
        )
    }

    /// Delivers an event; a full queue or budget disconnects the slow
    /// session.
    pub fn deliver(&self, event: SessionEvent) {
        let weight = event.weight();
        if !self.budget.take(weight) {
            self.kill("the session cannot keep up with room events");
            return;
        }
        match self.tx.try_send(Queued { event, weight }) {
            Ok(()) => {}
            Err(e) => {
                self.budget.give(weight);
                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                    self.kill("the session cannot keep up with room events");
                }
            }
        }
    }

    /// Asks the session to close with a reason.
    pub fn kill(&self, reason: &str) {
        let _ = self.kill.send(Some(reason.to_owned()));
    }
}
