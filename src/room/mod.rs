//! Rooms: membership, publishers, and the fan-out of room events.
//!
//! State sits behind std `Mutex`es that are never held across `.await`: every
//! critical section is a few map operations. Lock order is registry, then
//! room. Events reach sessions over their bounded queues with `try_send`; a
//! session whose queue is full is told to close ([`SessionHandle::kill`])
//! rather than letting memory grow.

mod admin;
pub mod budget;
pub mod events;
mod handle;
mod rooms;

pub use admin::{AdminError, MemberView, RoomView};
pub use events::{EventBus, RoomEvent};
pub use handle::{Queued, SessionEvent, SessionHandle};
pub use rooms::{Counts, Registry, Rooms};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use signaling::{ParticipantInfo, PublisherInfo, ServerMessage, TrackInfo};
use tokio::sync::OnceCell;

use crate::cluster::ClusterError;
use crate::media::{MediaEngine, RoomMedia, SubscriberHandle};

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// Room at its participant limit.
    #[error("room is full ({0} participants)")]
    RoomFull(usize),
    /// Node at its room limit.
    #[error("this node hosts its maximum of {0} rooms")]
    TooManyRooms(usize),
    /// Node at its forwarding budget (admission control).
    #[error("this server forwards {0} tracks, its limit; try again later")]
    AtCapacity(usize),
    /// The node is shutting down.
    #[error("the server is shutting down")]
    Draining,
    /// Another node holds the room.
    #[error("room is served by node {node_id}")]
    OwnedElsewhere {
        /// The owner.
        node_id: String,
        /// Its advertised URL, when registered.
        url: Option<String>,
    },
    /// The cluster could not place the room.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

struct Member {
    session: SessionHandle,
    username: String,
    /// Track ids claimed by this member's latest publish offer.
    claimed: Vec<String>,
    /// Tracks whose media flows, as the publisher reported them.
    published: Vec<TrackInfo>,
    /// Track ids an administrator muted: not forwarded, not announced.
    muted: HashSet<String>,
    /// Tracks announced to the room (new-publisher): `published` without
    /// the muted ones.
    live: Vec<TrackInfo>,
    /// The member's subscribe side, once started: the room tells it
    /// directly when publishers change their tracks or leave.
    subscriber: Option<SubscriberHandle>,
}

impl Member {
    /// Tells the member's subscriber that a publisher's tracks changed
    /// (`None`: it left). A subscriber whose inbox is full has a client
    /// flooding it with requests: its session is closed.
    fn follow(&self, publisher_id: &str, tracks: Option<&[TrackInfo]>) {
        if let Some(s) = &self.subscriber {
            if s.publisher_changed(publisher_id.to_owned(), tracks.map(<[_]>::to_vec))
                .is_err()
            {
                self.session
                    .kill("the session's subscriber cannot keep up with the room");
            }
        }
    }
}

/// One room on this node.
pub struct Room {
    name: String,
    media: OnceCell<RoomMedia>,
    engine: Arc<MediaEngine>,
    members: Mutex<HashMap<String, Member>>,
    events: EventBus,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Result of a successful join.
#[derive(Debug)]
pub struct Joined {
    /// The room.
    pub room: Arc<Room>,
    /// Others in the room.
    pub participants: Vec<ParticipantInfo>,
    /// Publishers with live tracks.
    pub publishers: Vec<PublisherInfo>,
}

impl Room {
    /// Room name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Member>> {
        // A poisoned lock means a panic while holding it: the maps are still
        // consistent (every section is a few inserts/removes), so go on.
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room's router, created on first use.
    pub async fn media(&self) -> &RoomMedia {
        self.media
            .get_or_init(|| async { self.engine.create_room().await })
            .await
    }

    /// Whether `session` is the current member for `participant_id`.
    pub fn is_member(&self, participant_id: &str, session_id: u64) -> bool {
        self.lock()
            .get(participant_id)
            .is_some_and(|m| m.session.session_id == session_id)
    }

    /// Sends to every member except `except`.
    fn broadcast(members: &HashMap<String, Member>, except: Option<&str>, event: &SessionEvent) {
        for (id, m) in members {
            if Some(id.as_str()) != except {
                m.session.deliver(event.clone());
            }
        }
    }

    /// A publisher left: every member except `except` gets `publisher-left`
    /// and its subscriber stops following it.
    fn publisher_left(
        members: &HashMap<String, Member>,
        room: &str,
        publisher_id: &str,
        except: Option<&str>,
    ) {
        let ev = SessionEvent::Send(ServerMessage::PublisherLeft {
            room_name: room.to_owned(),
            publisher_id: publisher_id.to_owned(),
        });
        for (id, m) in members {
            if Some(id.as_str()) != except {
                // The message first: the client hears of the change before
                // anything the subscriber sends because of it (the session
                // reads room events before media events).
                m.session.deliver(ev.clone());
                m.follow(publisher_id, None);
            }
        }
    }

    /// Starts telling `participant_id`'s subscriber about publisher
    /// changes (when `session_id` is still the member).
    pub fn attach_subscriber(&self, participant_id: &str, session_id: u64, s: SubscriberHandle) {
        if let Some(m) = self.lock().get_mut(participant_id) {
            if m.session.session_id == session_id {
                m.subscriber = Some(s);
            }
        }
    }

    /// Sends a message to everyone in the room (chat).
    pub fn send_all(&self, except: Option<&str>, message: ServerMessage) {
        let members = self.lock();
        Self::broadcast(&members, except, &SessionEvent::Send(message));
    }

    /// Sends to one participant; false when not in the room.
    pub fn send_to(&self, participant_id: &str, message: ServerMessage) -> bool {
        let members = self.lock();
        match members.get(participant_id) {
            Some(m) => {
                m.session.deliver(SessionEvent::Send(message));
                true
            }
            None => false,
        }
    }

    /// A subscriber found no media for `track_id`: tells its publisher's
    /// session, if it still publishes that track.
    pub fn report_missing_track(&self, room: &str, publisher_id: &str, track_id: &str) {
        let members = self.lock();
        if let Some(m) = members.get(publisher_id) {
            if m.live.iter().any(|t| t.track_id == track_id) {
                m.session.deliver(SessionEvent::TrackMissing {
                    room: room.to_owned(),
                    track_id: track_id.to_owned(),
                });
            }
        }
    }

    /// Live tracks of a publisher, `None` if not publishing here.
    pub fn publisher_tracks(&self, publisher_id: &str) -> Option<Vec<TrackInfo>> {
        self.lock()
            .get(publisher_id)
            .filter(|m| !m.live.is_empty())
            .map(|m| m.live.clone())
    }

    /// Claims the track ids of a publish offer; fails when another member
    /// uses one (rheomesh keys publishers by track id, so a duplicate would
    /// let one participant disturb another's media).
    pub fn claim_tracks(
        &self,
        participant_id: &str,
        session_id: u64,
        track_ids: Vec<String>,
    ) -> Result<(), String> {
        let mut members = self.lock();
        for (id, m) in members.iter() {
            if id != participant_id {
                if let Some(t) = track_ids.iter().find(|t| m.claimed.contains(t)) {
                    return Err(format!("track id {t} is already published in this room"));
                }
            }
        }
        match members.get_mut(participant_id) {
            Some(m) if m.session.session_id == session_id => {
                m.claimed = track_ids;
                Ok(())
            }
            _ => Err("not a member of this room".to_owned()),
        }
    }

    /// Records a publisher's live tracks and tells the room (what is not
    /// muted).
    pub fn set_live_tracks(&self, participant_id: &str, session_id: u64, tracks: Vec<TrackInfo>) {
        let mut members = self.lock();
        let Some(m) = members.get_mut(participant_id) else {
            return;
        };
        if m.session.session_id != session_id || m.published == tracks {
            return;
        }
        if tracks.is_empty() {
            m.claimed.clear();
        }
        m.published = tracks;
        // The publisher gets `publisher-left` too: it is the
        // acknowledgement of unpublish.
        self.announce(&mut members, participant_id, None);
    }

    /// Announces `participant_id`'s tracks that are not muted, when they
    /// differ from what the room was told: `new-publisher` (complete list)
    /// to everyone else, or `publisher-left` to all but `except` when none
    /// is left; the members' subscribers follow.
    fn announce(
        &self,
        members: &mut HashMap<String, Member>,
        participant_id: &str,
        except: Option<&str>,
    ) {
        let Some(m) = members.get_mut(participant_id) else {
            return;
        };
        let tracks: Vec<TrackInfo> = m
            .published
            .iter()
            .filter(|t| !m.muted.contains(&t.track_id))
            .cloned()
            .collect();
        if m.live == tracks {
            return;
        }
        let was_publishing = !m.live.is_empty();
        m.live = tracks.clone();
        let username = m.username.clone();
        let members = &*members;
        if tracks.is_empty() {
            if was_publishing {
                Self::publisher_left(members, &self.name, participant_id, except);
                self.events.emit(RoomEvent::TracksUnpublished {
                    room: self.name.clone(),
                    participant_id: participant_id.to_owned(),
                });
            }
        } else {
            let ev = SessionEvent::Send(ServerMessage::NewPublisher {
                room_name: self.name.clone(),
                publisher_id: participant_id.to_owned(),
                username,
                tracks: tracks.clone(),
            });
            for (id, m) in members.iter() {
                if id != participant_id {
                    // The announcement first (see publisher_left).
                    m.session.deliver(ev.clone());
                    m.follow(participant_id, Some(&tracks));
                }
            }
            self.events.emit(RoomEvent::TracksPublished {
                room: self.name.clone(),
                participant_id: participant_id.to_owned(),
                tracks,
            });
        }
    }

    /// Counts (participants, publishers).
    fn counts(&self) -> (usize, usize, usize) {
        let members = self.lock();
        let publishers = members.values().filter(|m| !m.live.is_empty()).count();
        let tracks = members.values().map(|m| m.live.len()).sum();
        (members.len(), publishers, tracks)
    }
}
