//! The codecs and RTP header extensions every Router negotiates, written out
//! instead of relying on library defaults, so what the SFU speaks is visible in
//! one place.
//!
//! Payload types follow webrtc-rs's table because rheomesh inspects VP8 (96),
//! VP9 (98/100) and AV1/H.264 (41, 102, 108, 123, 125, 127) by payload type.

use rheomesh::config::{CodecConfig, HeaderExtensionConfig, MediaConfig};
use webrtc::api::media_engine::{
    MIME_TYPE_AV1, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9,
};
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTCRtpCodecParameters};
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::sdp::extmap;

/// (mime type, payload type, fmtp) of every video codec, in preference order.
const VIDEO: &[(&str, u8, &str)] = &[
    (MIME_TYPE_VP8, 96, ""),
    (MIME_TYPE_VP9, 98, "profile-id=0"),
    (MIME_TYPE_VP9, 100, "profile-id=1"),
    (
        MIME_TYPE_H264,
        102,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
    ),
    (
        MIME_TYPE_H264,
        127,
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
    ),
    (
        MIME_TYPE_H264,
        125,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    ),
    (
        MIME_TYPE_H264,
        108,
        "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
    ),
    (
        MIME_TYPE_H264,
        123,
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032",
    ),
    (MIME_TYPE_AV1, 41, ""),
];

const VIDEO_FEEDBACK: &[(&str, &str)] = &[
    ("goog-remb", ""),
    ("transport-cc", ""),
    ("ccm", "fir"),
    ("nack", ""),
    ("nack", "pli"),
];

const EXT_TOFFSET: &str = "urn:ietf:params:rtp-hdrext:toffset";
const EXT_FRAMEMARKING: &str = "urn:ietf:params:rtp-hdrext:framemarking";
const EXT_AV1_DD: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

/// The media configuration of every Router.
pub(crate) fn media_config() -> MediaConfig {
    let feedback: Vec<RTCPFeedback> = VIDEO_FEEDBACK
        .iter()
        .map(|(typ, parameter)| RTCPFeedback {
            typ: (*typ).to_owned(),
            parameter: (*parameter).to_owned(),
        })
        .collect();
    let video = VIDEO
        .iter()
        .map(|(mime, pt, fmtp)| RTCRtpCodecParameters {
            capability: RTCRtpCodecCapability {
                mime_type: (*mime).to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: (*fmtp).to_owned(),
                rtcp_feedback: feedback.clone(),
            },
            payload_type: *pt,
            ..Default::default()
        })
        .collect();
    let audio = vec![RTCRtpCodecParameters {
        capability: RTCRtpCodecCapability {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
        ..Default::default()
    }];
    // The subscribe side rewrites extmap ids to Chrome's default table, so only
    // extensions present in that table are offered.
    let header_extension = HeaderExtensionConfig {
        audio: vec![
            extmap::AUDIO_LEVEL_URI.to_owned(),
            extmap::ABS_SEND_TIME_URI.to_owned(),
            extmap::TRANSPORT_CC_URI.to_owned(),
            extmap::SDES_MID_URI.to_owned(),
        ],
        video: vec![
            EXT_TOFFSET.to_owned(),
            extmap::SDES_MID_URI.to_owned(),
            extmap::SDES_RTP_STREAM_ID_URI.to_owned(),
            extmap::SDES_REPAIR_RTP_STREAM_ID_URI.to_owned(),
            extmap::ABS_SEND_TIME_URI.to_owned(),
            EXT_FRAMEMARKING.to_owned(),
            EXT_AV1_DD.to_owned(),
        ],
    };
    MediaConfig {
        codec: CodecConfig { audio, video },
        header_extension,
    }
}
