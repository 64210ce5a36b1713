//! The subscriber actor's calls into the media library: the transport
//! (created with its media ports), subscribing a track, answering a
//! prepare offer, applying the client's answer, restarting ICE, client
//! candidates. Each returns the [`Input`] the negotiation is fed with.

use super::*;

impl Actor {
    /// The transport, created (with its media ports) on first use; the
    /// error says that the port range is full.
    pub(super) async fn transport(
        &mut self,
        itx: &mpsc::UnboundedSender<CandidateInit>,
    ) -> Result<Arc<SubscribeTransport>, String> {
        if let Some(t) = &self.transport {
            return Ok(Arc::clone(t));
        }
        let port = self.ctx.ports.try_take()?;
        let transport = self
            .ctx
            .router
            .lock()
            .await
            .create_subscribe_transport(self.ctx.config.clone())
            .await;
        let tx = itx.clone();
        transport
            .on_ice_candidate(Box::new(move |c: RTCIceCandidate| {
                if let Ok(init) = c.to_json() {
                    let _ = tx.send(from_rtc_candidate(init));
                }
            }))
            .await;
        let transport = Arc::new(transport);
        crate::media::stats::watch(&transport, "subscribe", self.ctx.stats_interval);
        self.liveness.created(std::time::Instant::now());
        self.transport = Some(Arc::clone(&transport));
        self.port = Some(port);
        Ok(transport)
    }

    pub(super) async fn subscribe(
        &mut self,
        track: TrackInfo,
        itx: &mpsc::UnboundedSender<CandidateInit>,
    ) -> Input {
        let Some(slot) = self.ctx.budget.try_take() else {
            return Input::SubscribeFailed(SubscribeFailure::Budget(format!(
                "this server forwards {} tracks, its limit (MAX_FORWARDED_TRACKS); try again later",
                self.ctx.budget.limit()
            )));
        };
        let transport = match self.transport(itx).await {
            Ok(t) => t,
            Err(e) => return Input::SubscribeFailed(SubscribeFailure::Budget(e)),
        };
        let id = track.track_id.clone();
        let result = off_runtime(move || async move {
            tokio::time::timeout(SUBSCRIBE_TIMEOUT, transport.subscribe(id)).await
        })
        .await;
        match result {
            Ok(Ok(Ok((subscriber, offer)))) => {
                self.forwarded.insert(track.track_id, (subscriber, slot));
                Input::Subscribed { offer: offer.sdp }
            }
            Ok(Ok(Err(e))) => {
                let msg = e.to_string();
                if msg.contains("not found") || msg.contains("does not have track") {
                    Input::SubscribeFailed(SubscribeFailure::Missing(msg))
                } else {
                    Input::SubscribeFailed(SubscribeFailure::Other(msg))
                }
            }
            Ok(Err(_elapsed)) => {
                tracing::warn!(room = %self.ctx.room, track = %track.track_id, "subscribe() stuck");
                Input::SubscribeFailed(SubscribeFailure::Stuck)
            }
            Err(e) => Input::SubscribeFailed(SubscribeFailure::Other(format!(
                "inside the media library: {e}"
            ))),
        }
    }

    pub(super) async fn prepare(
        &mut self,
        offer: String,
        itx: &mpsc::UnboundedSender<CandidateInit>,
    ) -> Input {
        let checked =
            client_sdp::check_subscriber(&offer).and_then(|()| self.ctx.filter_candidates(offer));
        let offer = match checked {
            Ok(offer) => offer,
            Err(message) => {
                return Input::PrepareFailed {
                    message,
                    failure: Failure::Rejected,
                }
            }
        };
        let offer = match RTCSessionDescription::offer(offer) {
            Ok(o) => o,
            Err(e) => {
                return Input::PrepareFailed {
                    message: format!("invalid SDP offer: {e}"),
                    failure: Failure::Rejected,
                }
            }
        };
        let transport = match self.transport(itx).await {
            Ok(t) => t,
            Err(message) => {
                return Input::PrepareFailed {
                    message,
                    failure: Failure::OverBudget,
                }
            }
        };
        let result = off_runtime(move || async move {
            tokio::time::timeout(CALL_TIMEOUT, transport.get_answer(offer)).await
        })
        .await;
        match result {
            Ok(Ok(Ok(answer))) => Input::Prepared { answer: answer.sdp },
            Ok(Ok(Err(e))) => Input::PrepareFailed {
                message: format!("offer rejected: {e}"),
                failure: Failure::Rejected,
            },
            Ok(Err(_)) | Err(_) => Input::PrepareFailed {
                message: "subscribe-prepare failed".to_owned(),
                failure: Failure::Internal,
            },
        }
    }

    /// Negotiation and subscription times of an answer's result.
    pub(super) fn count_answer(&mut self, result: &Input) {
        match result {
            Input::AnswerApplied => {
                let Some(sent) = self.offer_sent.take() else {
                    return;
                };
                metrics::negotiation_completed("subscribe", sent.elapsed());
                // The requests this offer carried: those before it.
                while self.requested.front().is_some_and(|t| *t <= sent) {
                    if let Some(t) = self.requested.pop_front() {
                        metrics::subscribed(t.elapsed());
                    }
                }
            }
            Input::AnswerFailed { .. } => metrics::negotiation_failed("subscribe"),
            _ => {}
        }
    }

    pub(super) async fn apply_answer(&mut self, sdp: String, how: AnswerAs) -> Input {
        let Some(transport) = self.transport.clone() else {
            // An answer is only fed with an offer outstanding, which needs
            // a transport; say so rather than panic.
            return Input::AnswerFailed {
                message: "no subscribe transport".to_owned(),
                offer_outstanding: false,
            };
        };
        let checked =
            client_sdp::check_subscriber(&sdp).and_then(|()| self.ctx.filter_candidates(sdp));
        let sdp = match checked {
            Ok(sdp) => sdp,
            Err(message) => {
                return Input::AnswerFailed {
                    message: format!("subscribe answer refused: {message}"),
                    offer_outstanding: true,
                }
            }
        };
        let answer = match RTCSessionDescription::answer(sdp) {
            Ok(a) => a,
            Err(e) => {
                return Input::AnswerFailed {
                    message: format!("invalid SDP answer: {e}"),
                    offer_outstanding: true,
                }
            }
        };
        let result = match how {
            AnswerAs::Plain => transport.set_answer(answer).await,
            AnswerAs::PranswerThenAnswer => {
                let mut pranswer = answer.clone();
                pranswer.sdp_type = RTCSdpType::Pranswer;
                match transport.set_answer(pranswer).await {
                    Ok(()) => {
                        // rheomesh's negotiation-needed handler must see
                        // the pranswer state first (media/settle.rs).
                        let waited = settle::after_pranswer().await;
                        if waited > settle::MIN * 2 {
                            tracing::debug!(room = %self.ctx.room, ?waited, "runtime busy: pranswer held longer");
                        }
                        transport.set_answer(answer).await
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(()) => {
                tracing::debug!(room = %self.ctx.room, ?how, state = %transport.signaling_state(), "subscribe answer applied");
                Input::AnswerApplied
            }
            Err(e) => Input::AnswerFailed {
                message: e.to_string(),
                offer_outstanding: transport.signaling_state() == RTCSignalingState::HaveLocalOffer,
            },
        }
    }

    pub(super) async fn restart(&mut self, itx: &mpsc::UnboundedSender<CandidateInit>) -> Input {
        let transport = match self.transport(itx).await {
            Ok(t) => t,
            Err(message) => {
                return Input::RestartFailed {
                    message,
                    retry: false,
                }
            }
        };
        let result = off_runtime(move || async move {
            tokio::time::timeout(CALL_TIMEOUT, transport.restart_ice()).await
        })
        .await;
        match result {
            Ok(Ok(Ok(offer))) => Input::Restarted { offer: offer.sdp },
            Ok(Ok(Err(e))) => {
                let message = e.to_string();
                // webrtc-ice refuses while its gathering flag still reads
                // "gathering"; rheomesh refuses before the connection started.
                let retry = message.contains("gathering") || message.contains("not correct");
                Input::RestartFailed { message, retry }
            }
            Ok(Err(_)) => Input::RestartFailed {
                message: "timed out".to_owned(),
                retry: false,
            },
            Err(e) => Input::RestartFailed {
                message: e.to_string(),
                retry: false,
            },
        }
    }

    pub(super) async fn candidate(
        &mut self,
        candidate: Option<CandidateInit>,
        itx: &mpsc::UnboundedSender<CandidateInit>,
    ) {
        let Some(c) = candidate else { return };
        if !self.ctx.accepts(&c) {
            return;
        }
        let Ok(transport) = self.transport(itx).await else {
            // No media port for a transport: its request gets room-full.
            tracing::debug!(room = %self.ctx.room, "candidate dropped: no media ports");
            return;
        };
        self.ctx
            .add_candidate(&*transport, &c, ClientType::SubscribeIceCandidate)
            .await;
    }
}
