//! A protocol driver: one participant with a real publish PeerConnection and
//! a real subscribe PeerConnection, answering everything the server sends,
//! in order, the way a well-behaved client library does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sfu_testkit::sdp::ice_ufrag;
use signaling::client::Client;
use signaling::{CandidateInit, ClientMessage, RequestId};
use tokio::sync::mpsc;

use super::peer::{PeerConfig, TestPublisher, TestSubscriber, TrackSpec};
use super::{test_ip, Endpoint, T};

#[derive(Clone)]
pub struct Options {
    pub publish: bool,
    /// Send subscribe-prepare before subscribing.
    pub prepare: bool,
    /// Send candidates as bare strings (the seed-001 shape).
    pub bare_candidates: bool,
    /// Authenticate with an `auth` message instead of `?token=`.
    pub auth_message: bool,
    /// Sends this rewrite of the first subscribe answer before the real one
    /// (a hostile or broken client).
    pub tamper_first_answer: Option<fn(&str) -> String>,
    /// The peers' addresses; `None`: the test address, local and remote.
    pub peer: Option<PeerConfig>,
    /// Use the ICE servers of `auth-ok` (TURN) for both PeerConnections.
    pub server_ice_servers: bool,
}

impl Options {
    /// A participant that only subscribes (prepared, like the web library).
    pub fn subscriber() -> Options {
        Options {
            publish: false,
            ..Options::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            publish: true,
            prepare: true,
            bare_candidates: false,
            auth_message: false,
            tamper_first_answer: None,
            peer: None,
            server_ice_servers: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    pub at: Instant,
    pub raw: Value,
}

pub struct Driver {
    pub id: String,
    /// The `auth-ok` this participant got.
    pub auth_ok: Value,
    pub room: String,
    pub video_track: String,
    pub audio_track: String,
    pub publisher: Option<Arc<TestPublisher>>,
    pub subscriber: Arc<TestSubscriber>,
    events: Arc<Mutex<Vec<Event>>>,
    tx: mpsc::UnboundedSender<(ClientMessage, Option<RequestId>)>,
    raw_tx: mpsc::UnboundedSender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Driver {
    /// Connects, joins `room`, and (when publishing) sends a publish offer
    /// for one VP8 and one Opus track.
    pub async fn join(server: &impl Endpoint, id: &str, room: &str, opts: Options) -> Driver {
        let (mut client, auth_ok) = if opts.auth_message {
            let mut c = Client::connect(&server.ws_url(), None)
                .await
                .expect("connect");
            c.send_raw(
                &serde_json::json!({"type": "auth", "token": server.user_token(id)}).to_string(),
            )
            .await
            .expect("send auth");
            let ok = c.wait_type("auth-ok", T).await.expect("auth-ok");
            (c, ok.raw)
        } else {
            let url = format!("{}?token={}", server.ws_url(), server.user_token(id));
            let mut c = Client::connect(&url, None).await.expect("connect");
            let ok = c.wait_type("auth-ok", T).await.expect("auth-ok");
            (c, ok.raw)
        };
        let mut cfg = opts
            .peer
            .clone()
            .unwrap_or_else(|| PeerConfig::on(test_ip()));
        if opts.server_ice_servers {
            cfg.ice_servers = super::peer::ice_servers_of(&auth_ok);
        }
        let subscriber = Arc::new(TestSubscriber::new(&cfg).await.expect("subscriber pc"));
        let video_track = format!("{id}-video");
        let audio_track = format!("{id}-audio");
        let publisher = if opts.publish {
            let stream = format!("{id}-stream");
            Some(Arc::new(
                TestPublisher::new(
                    &cfg,
                    &[
                        TrackSpec::audio(&audio_track, &stream),
                        TrackSpec::video(&video_track, &stream),
                    ],
                )
                .await
                .expect("publisher pc"),
            ))
        } else {
            None
        };
        client
            .send(&ClientMessage::Join {
                room_name: room.into(),
            })
            .await
            .expect("send join");
        let joined = client.wait_type("joined", T).await.expect("joined");
        let events = Arc::new(Mutex::new(vec![Event {
            at: Instant::now(),
            raw: joined.raw,
        }]));

        if opts.prepare {
            let offer = subscriber.prepare_offer().await.expect("prepare offer");
            client
                .send(&ClientMessage::SubscribePrepare {
                    room_name: Some(room.into()),
                    offer,
                })
                .await
                .expect("send prepare");
            let r = client
                .wait_type("subscribe-prepare-answer", T)
                .await
                .expect("prepare answer");
            let answer = r.raw["answer"].as_str().expect("answer sdp").to_owned();
            subscriber
                .set_prepare_answer(&answer)
                .await
                .expect("apply prepare answer");
        }
        let mut pub_cands = publisher.as_ref().map(|p| p.take_candidates());
        let mut sub_cands = subscriber.take_candidates();
        if let Some(p) = &publisher {
            let offer = p.create_offer().await.expect("publish offer");
            client
                .send(&ClientMessage::PublishOffer {
                    room_name: Some(room.into()),
                    offer,
                })
                .await
                .expect("send offer");
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<(ClientMessage, Option<RequestId>)>();
        let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<String>();
        let task = {
            let events = Arc::clone(&events);
            let publisher = publisher.clone();
            let subscriber = Arc::clone(&subscriber);
            let room = room.to_owned();
            let bare = opts.bare_candidates;
            let mut tamper = opts.tamper_first_answer;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = client.recv(Duration::from_secs(3600)) => {
                            let Ok(r) = r else { break };
                            events.lock().unwrap().push(Event { at: Instant::now(), raw: r.raw.clone() });
                            match r.type_name() {
                                "publish-answer" => {
                                    if let Some(p) = &publisher {
                                        p.set_answer(r.raw["answer"].as_str().unwrap_or_default()).await.expect("set publish answer");
                                        p.start_media();
                                    }
                                }
                                "publish-ice-candidate" => {
                                    if let (Some(p), Ok(Some(c))) = (&publisher, serde_json::from_value::<Option<CandidateInit>>(r.raw["candidate"].clone())) {
                                        let _ = p.add_remote_candidate(c).await;
                                    }
                                }
                                "subscribe-offer" => {
                                    let offer = r.raw["offer"].as_str().unwrap_or_default();
                                    let answer = subscriber.answer(offer).await.expect("answer subscribe offer");
                                    let publisher_id = r.raw["publisherId"].as_str().map(str::to_owned);
                                    if let Some(tamper) = tamper.take() {
                                        let msg = ClientMessage::SubscribeAnswer { room_name: Some(room.clone()), publisher_id: publisher_id.clone(), answer: tamper(&answer) };
                                        if client.send(&msg).await.is_err() { break; }
                                    }
                                    let msg = ClientMessage::SubscribeAnswer { room_name: Some(room.clone()), publisher_id, answer };
                                    if client.send(&msg).await.is_err() { break; }
                                }
                                "subscribe-ice-candidate" => {
                                    if let Ok(Some(c)) = serde_json::from_value::<Option<CandidateInit>>(r.raw["candidate"].clone()) {
                                        let _ = subscriber.add_remote_candidate(c).await;
                                    }
                                }
                                _ => {}
                            }
                        }
                        Some(Some(c)) = async { match pub_cands.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                            let msg = if bare {
                                serde_json::json!({"type":"publish-ice-candidate","roomName":room,"candidate":c.candidate}).to_string()
                            } else {
                                serde_json::to_string(&ClientMessage::PublishIceCandidate { room_name: Some(room.clone()), candidate: Some(c) }).expect("encode")
                            };
                            if client.send_raw(&msg).await.is_err() { break; }
                        }
                        Some(Some(c)) = sub_cands.recv() => {
                            let msg = ClientMessage::SubscribeIceCandidate { room_name: Some(room.clone()), candidate: Some(c) };
                            if client.send(&msg).await.is_err() { break; }
                        }
                        Some(text) = raw_rx.recv() => {
                            if client.send_raw(&text).await.is_err() { break; }
                        }
                        cmd = rx.recv() => match cmd {
                            Some((msg, id)) => { if client.send_with_id(&msg, id).await.is_err() { break; } }
                            None => { client.close().await; break; }
                        }
                    }
                }
            })
        };
        Driver {
            id: id.to_owned(),
            auth_ok,
            room: room.to_owned(),
            video_track,
            audio_track,
            publisher,
            subscriber,
            events,
            tx,
            raw_tx,
            task,
        }
    }

    /// Sends a raw JSON frame (for the seed-001 shapes).
    pub fn send_json(&self, v: Value) {
        let _ = self.raw_tx.send(v.to_string());
    }

    pub fn send(&self, msg: ClientMessage) {
        let _ = self.tx.send((msg, None));
    }

    pub fn subscribe(&self, publisher_id: &str) {
        self.send(ClientMessage::SubscribeRequest {
            room_name: Some(self.room.clone()),
            publisher_id: publisher_id.to_owned(),
        });
    }

    pub fn unsubscribe(&self, publisher_id: &str) {
        self.send(ClientMessage::Unsubscribe {
            room_name: Some(self.room.clone()),
            publisher_id: publisher_id.to_owned(),
        });
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn events_of(&self, ty: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.raw["type"] == ty)
            .collect()
    }

    /// Waits until an event matching `pred` has been received (at any time).
    pub async fn wait_event(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(&e.raw)) {
                return e;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: no {what} within {timeout:?}; events: {:?}",
                    self.id,
                    self.events()
                        .iter()
                        .map(|e| e.raw.to_string())
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the publisher's media is known: a `new-publisher`, or the
    /// `joined` reply listing it, with `tracks` tracks.
    pub async fn wait_new_publisher(&self, publisher_id: &str, tracks: usize) -> Event {
        let has = |v: &Value| {
            v["publisherId"] == publisher_id
                && v["tracks"].as_array().map(|a| a.len()) == Some(tracks)
        };
        self.wait_event("new-publisher", Duration::from_secs(15), |v| {
            (v["type"] == "new-publisher" && has(v))
                || (v["type"] == "joined"
                    && v["publishers"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(has)))
        })
        .await
    }

    /// The server's ICE ufrags across this client's subscribe SDP (prepare
    /// answer and every offer), in order, without repeats: more than one
    /// means the server changed its ICE credentials (restarted ICE).
    pub fn server_subscribe_ufrags(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in self.events() {
            let sdp = match e.raw["type"].as_str() {
                Some("subscribe-offer") => e.raw["offer"].as_str(),
                Some("subscribe-prepare-answer") => e.raw["answer"].as_str(),
                _ => None,
            };
            if let Some(u) = sdp.and_then(ice_ufrag) {
                if out.last() != Some(&u) {
                    out.push(u);
                }
            }
        }
        out
    }

    /// Asserts the server never changed its subscribe ICE credentials.
    pub fn assert_no_server_ice_restart(&self) {
        let u = self.server_subscribe_ufrags();
        assert!(
            u.len() <= 1,
            "{}: the server restarted ICE: ufrags {u:?}",
            self.id
        );
    }

    /// No error events so far (returns them for the assertion message).
    pub fn errors(&self) -> Vec<String> {
        self.events_of("error")
            .into_iter()
            .map(|e| e.raw.to_string())
            .collect()
    }

    pub async fn close(self) {
        drop(self.tx);
        drop(self.raw_tx);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        if let Some(p) = &self.publisher {
            p.close().await;
        }
        self.subscriber.close().await;
    }
}
