//! WebRTC peers of the load tester and the tests: one webrtc-rs API
//! restricted to host UDP candidates on one address, and the SDP chores
//! every driver needs.
//!
//! Network rule: local candidates are gathered only on `ip` (ip filter,
//! UDP only, no mDNS, no STUN/TURN), and remote candidates on any other
//! address are removed before they reach ICE ([`crate::sdp`]), so no check
//! ever leaves for an address the operator (or the test network) did not
//! name.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use webrtc::api::interceptor_registry::{
    configure_nack, configure_rtcp_reports, configure_twcc_receiver_only,
    register_default_interceptors,
};
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::packet::Packet as RtcpPacket;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::rtp_transceiver::RTCPFeedback;

use crate::sdp;

/// Longest wait for one WebRTC operation (gathering, offer, answer).
pub const OP_TIMEOUT: Duration = Duration::from_secs(15);

/// Payload types the load tester offers (Chrome's numbers).
pub const PT_OPUS: u8 = 111;
/// VP8 payload type.
pub const PT_VP8: u8 = 96;

/// Which interceptors and VP8 feedback a peer runs: the two users measure
/// different things, so they keep the stacks they were measured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// NACK, RTCP reports and TWCC receive reports, VP8 with FIR, NACK and
    /// PLI feedback: the load tester's peers, as cheap as a browser-like
    /// receiver can be.
    Load,
    /// webrtc-rs's default interceptors, and VP8 also offering `goog-remb`
    /// and `transport-cc` as browsers do: the integration tests' peers.
    Browser,
}

impl Profile {
    /// The VP8 capability this profile registers (and publishes with).
    pub fn vp8(self) -> RTCRtpCodecCapability {
        match self {
            Profile::Load => vp8(&[]),
            Profile::Browser => vp8(&[("goog-remb", ""), ("transport-cc", "")]),
        }
    }
}

/// Builds peer connections that only use `ip`.
pub struct Rtc {
    api: API,
    ip: IpAddr,
}

impl Rtc {
    /// An API with VP8/96 and Opus/111, NACK, RTCP reports and TWCC receive
    /// reports (what a browser peer would run), candidates on `ip` only
    /// ([`Profile::Load`]).
    pub fn new(ip: IpAddr) -> Result<Rtc> {
        Rtc::with_profile(ip, Profile::Load)
    }

    /// An API with VP8/96 and Opus/111 and `profile`'s interceptors,
    /// candidates on `ip` only.
    pub fn with_profile(ip: IpAddr, profile: Profile) -> Result<Rtc> {
        let mut m = MediaEngine::default();
        m.register_codec(
            RTCRtpCodecParameters {
                capability: opus(),
                payload_type: PT_OPUS,
                ..Default::default()
            },
            RTPCodecType::Audio,
        )?;
        m.register_codec(
            RTCRtpCodecParameters {
                capability: profile.vp8(),
                payload_type: PT_VP8,
                ..Default::default()
            },
            RTPCodecType::Video,
        )?;
        let mut registry = Registry::new();
        registry = match profile {
            Profile::Load => {
                registry = configure_nack(registry, &mut m);
                registry = configure_rtcp_reports(registry);
                configure_twcc_receiver_only(registry, &mut m)?
            }
            Profile::Browser => register_default_interceptors(registry, &mut m)?,
        };

        let s = one_ip_settings(ip);
        let api = APIBuilder::new()
            .with_media_engine(m)
            .with_interceptor_registry(registry)
            .with_setting_engine(s)
            .build();
        Ok(Rtc { api, ip })
    }

    /// The one address candidates may use.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// A new peer connection (no ICE servers).
    pub async fn peer(&self) -> Result<Arc<RTCPeerConnection>> {
        self.peer_with(Vec::new()).await
    }

    /// A new peer connection using these ICE servers (e.g. TURN from the
    /// server's `auth-ok`).
    pub async fn peer_with(
        &self,
        ice_servers: Vec<RTCIceServer>,
    ) -> Result<Arc<RTCPeerConnection>> {
        let pc = self
            .api
            .new_peer_connection(RTCConfiguration {
                ice_servers,
                ..Default::default()
            })
            .await
            .context("new peer connection")?;
        Ok(Arc::new(pc))
    }

    /// Drops `a=candidate` lines that are not UDP on our address.
    pub fn filter_sdp(&self, sdp: &str) -> String {
        sdp::filter_candidates(sdp, self.ip, |_| {})
    }

    /// Whether a candidate (with or without `a=`) is UDP on our address.
    pub fn candidate_allowed(&self, candidate: &str) -> bool {
        sdp::candidate_allowed(candidate, self.ip)
    }
}

/// Sets our local description and waits until ICE gathering completed, then
/// returns the local SDP, which carries all candidates (no trickle needed).
pub async fn set_local_full(pc: &RTCPeerConnection, desc: RTCSessionDescription) -> Result<String> {
    let mut done = pc.gathering_complete_promise().await;
    pc.set_local_description(desc)
        .await
        .context("set local description")?;
    tokio::time::timeout(OP_TIMEOUT, done.recv())
        .await
        .map_err(|_| anyhow!("ICE gathering did not complete within {OP_TIMEOUT:?}"))?;
    pc.local_description()
        .await
        .map(|d| d.sdp)
        .ok_or_else(|| anyhow!("no local description"))
}

/// Creates an offer and returns it with candidates.
pub async fn offer(pc: &RTCPeerConnection) -> Result<String> {
    let offer = tokio::time::timeout(OP_TIMEOUT, pc.create_offer(None))
        .await
        .map_err(|_| anyhow!("create offer timed out"))?
        .context("create offer")?;
    set_local_full(pc, offer).await
}

/// Applies a remote offer (candidates filtered) and returns our answer with
/// candidates.
pub async fn answer(rtc: &Rtc, pc: &RTCPeerConnection, remote_offer: &str) -> Result<String> {
    let desc = RTCSessionDescription::offer(rtc.filter_sdp(remote_offer))
        .context("remote offer is not an SDP offer")?;
    pc.set_remote_description(desc)
        .await
        .context("set remote offer")?;
    let answer = tokio::time::timeout(OP_TIMEOUT, pc.create_answer(None))
        .await
        .map_err(|_| anyhow!("create answer timed out"))?
        .context("create answer")?;
    set_local_full(pc, answer).await
}

/// Applies a remote answer (candidates filtered).
pub async fn accept_answer(rtc: &Rtc, pc: &RTCPeerConnection, remote_answer: &str) -> Result<()> {
    let desc = RTCSessionDescription::answer(rtc.filter_sdp(remote_answer))
        .context("remote answer is not an SDP answer")?;
    pc.set_remote_description(desc)
        .await
        .context("set remote answer")
}

/// ICE settings that gather and use host UDP candidates on `ip` only (an
/// ip filter, one network type, no mDNS): what keeps a test or load peer to
/// the address under test.
pub fn one_ip_settings(ip: IpAddr) -> SettingEngine {
    let mut s = SettingEngine::default();
    s.set_ip_filter(Box::new(move |a: IpAddr| a == ip));
    s.set_network_types(vec![if ip.is_ipv4() {
        NetworkType::Udp4
    } else {
        NetworkType::Udp6
    }]);
    // Loopback addresses are only gathered if `ip` itself is one; the filter
    // still admits nothing but `ip`.
    s.set_include_loopback_candidate(ip.is_loopback());
    s.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    s
}

/// Opus as every webrtc-rs peer of the load tester and the tests offers it.
pub fn opus() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// VP8 with FIR, NACK and PLI feedback, plus `extra` feedback types
/// (`(type, parameter)`, e.g. `("goog-remb", "")`).
pub fn vp8(extra: &[(&str, &str)]) -> RTCRtpCodecCapability {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    let mut rtcp_feedback = vec![fb("ccm", "fir"), fb("nack", ""), fb("nack", "pli")];
    rtcp_feedback.extend(extra.iter().map(|(t, p)| fb(t, p)));
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback,
    }
}

/// Whether an RTCP packet asks the sender for a keyframe (PLI or FIR), as
/// it would ask an encoder.
pub fn is_keyframe_request(packet: &(dyn RtcpPacket + Send + Sync)) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}
