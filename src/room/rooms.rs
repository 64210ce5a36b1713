//! The rooms of this node: the registry they live in, joining and leaving
//! (which open and close rooms, with their cluster leases), eviction, and
//! the counts for `/health` and `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use signaling::{ParticipantInfo, PublisherInfo, ServerMessage};
use tokio::sync::{watch, OnceCell};

use super::{EventBus, JoinError, Joined, Member, Room, RoomEvent, SessionEvent, SessionHandle};
use crate::cluster::{Cluster, RoomPlacement};
use crate::media::MediaEngine;

/// The rooms of this node by name. Shared (not owned) by [`Rooms`], so that
/// what reports the node's load (the cluster registry) can count them
/// without a reference back to the rooms or the state that holds them.
#[derive(Debug, Default)]
pub struct Registry {
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    /// What happens in these rooms, for monitors.
    events: EventBus,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        // See Room::lock: sections are short and leave the map consistent.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the rooms publish their events.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Rooms, participants, publishers and live tracks of this node.
    pub fn counts(&self) -> Counts {
        let rooms: Vec<Arc<Room>> = self.lock().values().cloned().collect();
        let mut c = Counts {
            rooms: rooms.len(),
            ..Counts::default()
        };
        for r in rooms {
            let (p, pubs, tracks) = r.counts();
            c.participants += p;
            c.publishers += pubs;
            c.tracks += tracks;
        }
        c
    }
}

/// All rooms of this node: joins, leaves, placement in the cluster.
pub struct Rooms {
    engine: Arc<MediaEngine>,
    pub(super) cluster: Arc<dyn Cluster>,
    pub(super) registry: Arc<Registry>,
    max_rooms: usize,
    max_participants: usize,
    draining: watch::Receiver<bool>,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rooms").finish_non_exhaustive()
    }
}

/// Counters for `/health`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rooms.
    pub rooms: usize,
    /// Participants (room memberships).
    pub participants: usize,
    /// Publishers with live tracks.
    pub publishers: usize,
    /// Tracks with media.
    pub tracks: usize,
    /// Tracks forwarded to subscribers (admission-control budget in use).
    pub forwarded_tracks: usize,
    /// The budget (`MAX_FORWARDED_TRACKS`, 0 = no limit).
    pub forward_limit: usize,
}

impl Rooms {
    /// A registry.
    pub fn new(
        registry: Arc<Registry>,
        engine: Arc<MediaEngine>,
        cluster: Arc<dyn Cluster>,
        max_rooms: usize,
        max_participants: usize,
        draining: watch::Receiver<bool>,
    ) -> Rooms {
        Rooms {
            engine,
            cluster,
            registry,
            max_rooms,
            max_participants,
            draining,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.registry.lock()
    }

    /// Joins (creating the room if needed, after the cluster placed it on
    /// this node). A member with the same participant id from another
    /// session is replaced and told so.
    pub async fn join(
        &self,
        room_name: &str,
        participant_id: &str,
        username: &str,
        session: &SessionHandle,
    ) -> Result<Joined, JoinError> {
        if !self.lock().contains_key(room_name) {
            // Cheap refusals first: no lease for a room we would not open.
            self.check_new_room()?;
            match self.cluster.claim_room(room_name).await {
                Ok(RoomPlacement::Here) => {}
                Ok(RoomPlacement::Elsewhere { node_id, url }) => {
                    return Err(JoinError::OwnedElsewhere { node_id, url })
                }
                Err(e) => return Err(JoinError::Cluster(e)),
            }
        }
        self.join_here(room_name, participant_id, username, session)
    }

    fn check_new_room(&self) -> Result<(), JoinError> {
        if *self.draining.borrow() {
            return Err(JoinError::Draining);
        }
        if self.lock().len() >= self.max_rooms {
            return Err(JoinError::TooManyRooms(self.max_rooms));
        }
        Ok(())
    }

    fn join_here(
        &self,
        room_name: &str,
        participant_id: &str,
        username: &str,
        session: &SessionHandle,
    ) -> Result<Joined, JoinError> {
        let mut rooms = self.lock();
        let room = match rooms.get(room_name) {
            Some(r) => Arc::clone(r),
            None => {
                if *self.draining.borrow() {
                    return Err(JoinError::Draining);
                }
                if rooms.len() >= self.max_rooms {
                    return Err(JoinError::TooManyRooms(self.max_rooms));
                }
                let r = Arc::new(Room {
                    name: room_name.to_owned(),
                    media: OnceCell::new(),
                    engine: Arc::clone(&self.engine),
                    members: Mutex::new(HashMap::new()),
                    events: self.registry.events.clone(),
                });
                rooms.insert(room_name.to_owned(), Arc::clone(&r));
                r.events.emit(RoomEvent::RoomOpened {
                    room: room_name.to_owned(),
                });
                r
            }
        };
        let mut members = room.lock();
        let old = members.get(participant_id).map(|m| m.session.session_id);
        if old.is_none() && members.len() >= self.max_participants {
            return Err(JoinError::RoomFull(self.max_participants));
        }
        // A newcomer would subscribe to something the node cannot forward.
        if old.is_none() && self.engine.budget().exhausted() {
            return Err(JoinError::AtCapacity(self.engine.budget().limit()));
        }
        // A session joining a room it is already in keeps its membership
        // (and its tracks); the others hear nothing new.
        let rejoin = old == Some(session.session_id);
        let replaced = (!rejoin).then(|| {
            // An administrator's mutes outlive a reconnect (the newer
            // session replacing the older one), or reconnecting would be
            // the way around them.
            let muted = members
                .get(participant_id)
                .map(|m| m.muted.clone())
                .unwrap_or_default();
            members.insert(
                participant_id.to_owned(),
                Member {
                    session: session.clone(),
                    username: username.to_owned(),
                    claimed: Vec::new(),
                    published: Vec::new(),
                    muted,
                    live: Vec::new(),
                    subscriber: None,
                },
            )
        });
        match replaced {
            None => {}
            Some(Some(old)) => {
                old.session.deliver(SessionEvent::Replaced {
                    room: room_name.to_owned(),
                });
                if !old.live.is_empty() {
                    Room::publisher_left(&members, room_name, participant_id, Some(participant_id));
                }
            }
            Some(None) => {
                let ev = SessionEvent::Send(ServerMessage::ParticipantJoined {
                    room_name: room_name.to_owned(),
                    participant_id: participant_id.to_owned(),
                    username: username.to_owned(),
                });
                Room::broadcast(&members, Some(participant_id), &ev);
                room.events.emit(RoomEvent::ParticipantJoined {
                    room: room_name.to_owned(),
                    participant_id: participant_id.to_owned(),
                    username: username.to_owned(),
                });
            }
        }
        let participants = members
            .iter()
            .filter(|(id, _)| id.as_str() != participant_id)
            .map(|(id, m)| ParticipantInfo {
                participant_id: id.clone(),
                username: m.username.clone(),
            })
            .collect();
        let publishers = members
            .iter()
            .filter(|(id, m)| id.as_str() != participant_id && !m.live.is_empty())
            .map(|(id, m)| PublisherInfo {
                publisher_id: id.clone(),
                username: m.username.clone(),
                tracks: m.live.clone(),
            })
            .collect();
        drop(members);
        Ok(Joined {
            room,
            participants,
            publishers,
        })
    }

    /// Leaves; closes the room when it is empty. Returns whether this session
    /// was the member (a replaced session is not).
    pub async fn leave(&self, room: &Arc<Room>, participant_id: &str, session_id: u64) -> bool {
        let closed = {
            let mut rooms = self.lock();
            let mut members = room.lock();
            match members.get(participant_id) {
                Some(m) if m.session.session_id == session_id => {}
                _ => return false,
            }
            let Some(m) = members.remove(participant_id) else {
                return false;
            };
            if !m.live.is_empty() {
                Room::publisher_left(&members, &room.name, participant_id, None);
                room.events.emit(RoomEvent::TracksUnpublished {
                    room: room.name.clone(),
                    participant_id: participant_id.to_owned(),
                });
            }
            let ev = SessionEvent::Send(ServerMessage::ParticipantLeft {
                room_name: room.name.clone(),
                participant_id: participant_id.to_owned(),
            });
            Room::broadcast(&members, None, &ev);
            room.events.emit(RoomEvent::ParticipantLeft {
                room: room.name.clone(),
                participant_id: participant_id.to_owned(),
            });
            let empty = members.is_empty();
            if empty && rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
                rooms.remove(&room.name);
                room.events.emit(RoomEvent::RoomClosed {
                    room: room.name.clone(),
                });
            }
            empty
        };
        if closed {
            if let Some(media) = room.media.get() {
                media.close().await;
            }
            // Unless the room was opened again meanwhile (its new instance
            // keeps the lease).
            if !self.lock().contains_key(&room.name) {
                self.cluster.release_room(&room.name).await;
            }
            tracing::info!(room = %room.name, "room closed");
        }
        true
    }

    /// Closes a room this node may not serve any more (its lease went to
    /// another node): every member is told to reconnect; they find the room
    /// where it lives now.
    pub async fn evict(&self, room_name: &str) {
        let Some(room) = self.lock().remove(room_name) else {
            return;
        };
        let members: Vec<SessionHandle> = room.lock().drain().map(|(_, m)| m.session).collect();
        for s in &members {
            s.deliver(SessionEvent::RoomMoved {
                room: room_name.to_owned(),
            });
        }
        room.events.emit(RoomEvent::RoomClosed {
            room: room_name.to_owned(),
        });
        if let Some(media) = room.media.get() {
            media.close().await;
        }
        tracing::warn!(room = %room_name, members = members.len(), "room moved to another node; members told to reconnect");
    }

    /// Whether the room is open on this node.
    pub fn is_open(&self, room_name: &str) -> bool {
        self.lock().contains_key(room_name)
    }

    /// Counters for `/health`.
    pub fn counts(&self) -> Counts {
        Counts {
            forwarded_tracks: self.engine.budget().used(),
            forward_limit: self.engine.budget().limit(),
            ..self.registry.counts()
        }
    }
}
