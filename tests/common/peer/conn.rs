//! What both test peers are: one peer connection from the testkit's
//! one-address API, trickle ICE in both directions, and the record of the
//! remote candidates the network rule dropped.

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use sfu_testkit::proto::{from_webrtc, to_webrtc};
use sfu_testkit::rtc::{Profile, Rtc};
use sfu_testkit::sdp::{candidate_allowed, candidate_on_any, filter_candidates_on_any};
use signaling::CandidateInit;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use webrtc::ice_transport::ice_candidate::RTCIceCandidate;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;

use super::PeerConfig;

const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// The peer connection under a [`super::TestPublisher`] or a
/// [`super::TestSubscriber`] (both dereference to it), with what the two
/// share.
pub struct Peer {
    pub(super) pc: Arc<RTCPeerConnection>,
    ip: IpAddr,
    /// Addresses accepted in remote candidates.
    remote_ips: Vec<IpAddr>,
    candidates_rx: Mutex<Option<mpsc::UnboundedReceiver<Option<CandidateInit>>>>,
    gathering_done: Arc<AtomicBool>,
    dropped_remote: Arc<Mutex<Vec<String>>>,
    pub(super) tasks: Arc<Mutex<Vec<AbortHandle>>>,
    pub(super) closed_tx: watch::Sender<bool>,
}

impl Peer {
    pub(super) async fn new(cfg: &PeerConfig) -> Result<Self> {
        // The browser-like stack: default interceptors, VP8 offering REMB
        // and transport-cc.
        let pc = Rtc::with_profile(cfg.ip, Profile::Browser)?
            .peer_with(cfg.ice_servers.clone())
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let ip = cfg.ip;
        let with_turn = !cfg.ice_servers.is_empty();
        let gathering_done = Arc::new(AtomicBool::new(false));
        let gd = gathering_done.clone();
        pc.on_ice_candidate(Box::new(move |c: Option<RTCIceCandidate>| {
            match c {
                None => {
                    gd.store(true, Ordering::SeqCst);
                    let _ = tx.send(None);
                }
                Some(c) => match c.to_json() {
                    Ok(init) => {
                        // Defence in depth: the ip filter should make this
                        // impossible; relay candidates (from the configured
                        // TURN servers) are the one other kind allowed.
                        let relay = with_turn && init.candidate.contains(" typ relay");
                        let udp = init.candidate.to_ascii_lowercase().contains(" udp ");
                        if (relay && udp) || candidate_allowed(&init.candidate, ip) {
                            let _ = tx.send(Some(from_webrtc(init)));
                        } else {
                            eprintln!(
                                "peer: dropping unexpected local candidate {}",
                                init.candidate
                            );
                        }
                    }
                    Err(e) => eprintln!("peer: cannot serialize local candidate: {e}"),
                },
            }
            Box::pin(async {})
        }));
        let (closed_tx, _) = watch::channel(false);
        Ok(Self {
            pc,
            ip,
            remote_ips: if cfg.remote_ips.is_empty() {
                vec![ip]
            } else {
                cfg.remote_ips.clone()
            },
            candidates_rx: Mutex::new(Some(rx)),
            gathering_done,
            dropped_remote: Arc::new(Mutex::new(Vec::new())),
            tasks: Arc::new(Mutex::new(Vec::new())),
            closed_tx,
        })
    }

    /// Local ICE candidates as they are gathered; `None` = end of candidates.
    /// Panics if called twice.
    pub fn take_candidates(&self) -> mpsc::UnboundedReceiver<Option<CandidateInit>> {
        self.candidates_rx
            .lock()
            .unwrap()
            .take()
            .expect("take_candidates() may only be called once per peer")
    }

    fn drop_remote(&self, what: String) {
        eprintln!(
            "peer: dropping remote candidate not on {:?}: {what}",
            self.remote_ips
        );
        self.dropped_remote.lock().unwrap().push(what);
    }

    /// Removes `a=candidate` lines that are not UDP on `self.ip`.
    pub(super) fn filter_remote_sdp(&self, sdp: &str) -> String {
        filter_candidates_on_any(sdp, &self.remote_ips, |line| {
            self.drop_remote(line.to_owned())
        })
    }

    /// Adds a trickled remote candidate. An empty candidate string means
    /// end-of-candidates. Candidates not UDP on the configured IP are dropped
    /// (recorded in `dropped_remote_candidates`) and `Ok` is returned.
    pub async fn add_remote_candidate(&self, c: CandidateInit) -> Result<()> {
        let value = c.candidate.trim();
        if !value.is_empty() && !candidate_on_any(value, &self.remote_ips) {
            self.drop_remote(value.to_owned());
            return Ok(());
        }
        let mut init = to_webrtc(&c);
        init.candidate = value.to_owned();
        tokio::time::timeout(OP_TIMEOUT, self.pc.add_ice_candidate(init))
            .await
            .map_err(|_| anyhow!("add_ice_candidate timed out"))?
            .context("add_ice_candidate")
    }

    pub(super) async fn set_remote(&self, desc: RTCSessionDescription) -> Result<()> {
        tokio::time::timeout(OP_TIMEOUT, self.pc.set_remote_description(desc))
            .await
            .map_err(|_| anyhow!("set_remote_description timed out"))?
            .context("set_remote_description")
    }

    /// Awaits `made` (an offer or answer `what` makes, bounded), sets it as
    /// local description and returns its SDP (trickle ICE: does not wait
    /// for gathering; candidates come through `take_candidates`).
    pub(super) async fn set_local_made(
        &self,
        what: &str,
        made: impl Future<Output = webrtc::error::Result<RTCSessionDescription>>,
    ) -> Result<String> {
        let desc = tokio::time::timeout(OP_TIMEOUT, made)
            .await
            .map_err(|_| anyhow!("{what} timed out"))?
            .context(what.to_owned())?;
        let sdp = desc.sdp.clone();
        tokio::time::timeout(OP_TIMEOUT, self.pc.set_local_description(desc))
            .await
            .map_err(|_| anyhow!("set_local_description timed out"))?
            .context("set_local_description")?;
        Ok(sdp)
    }

    /// Current local SDP (includes the candidates gathered so far).
    pub async fn local_description_sdp(&self) -> Option<String> {
        self.pc.local_description().await.map(|d| d.sdp)
    }

    /// Waits (bounded) until local ICE gathering has completed.
    pub async fn wait_gathering_complete(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.gathering_done.load(Ordering::SeqCst) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// "new", "connecting", "connected", "disconnected", "failed", "closed".
    pub fn connection_state(&self) -> String {
        self.pc.connection_state().to_string()
    }

    /// Remote candidates that were dropped because they were not UDP on the configured IP.
    pub fn dropped_remote_candidates(&self) -> Vec<String> {
        self.dropped_remote.lock().unwrap().clone()
    }

    /// The underlying peer connection (for anything not covered here).
    pub fn peer_connection(&self) -> Arc<RTCPeerConnection> {
        self.pc.clone()
    }

    pub(super) fn push_task(&self, h: AbortHandle) {
        let mut t = self.tasks.lock().unwrap();
        t.retain(|h| !h.is_finished());
        t.push(h);
    }

    fn stop_tasks(&self) {
        let _ = self.closed_tx.send(true);
        for h in self.tasks.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    /// Stops media or the read loops and closes the peer connection (bounded).
    pub async fn close(&self) {
        self.stop_tasks();
        match tokio::time::timeout(OP_TIMEOUT, self.pc.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("peer: close error: {e}"),
            Err(_) => eprintln!("peer: close timed out"),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop_tasks();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let pc = self.pc.clone();
            handle.spawn(async move {
                let _ = tokio::time::timeout(OP_TIMEOUT, pc.close()).await;
            });
        }
    }
}
