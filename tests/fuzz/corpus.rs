//! Real inputs the mutations start from: the client SDPs captured from
//! browsers and stacks, the keys of the test suite, and the client messages
//! that docs/PROTOCOL.md shows.

use serde_json::Value;

/// Offers captured from Chromium, Firefox, GStreamer and aiortc (the unit
/// tests' fixtures).
pub const SDPS: &[&str] = &[
    include_str!("../../src/media/testdata/offer-aiortc.sdp"),
    include_str!("../../src/media/testdata/offer-chromium-added-later.sdp"),
    include_str!("../../src/media/testdata/offer-chromium-default.sdp"),
    include_str!("../../src/media/testdata/offer-chromium-mixed-directions.sdp"),
    include_str!("../../src/media/testdata/offer-firefox-default.sdp"),
    include_str!("../../src/media/testdata/offer-firefox-max-bundle.sdp"),
    include_str!("../../src/media/testdata/offer-firefox-mixed-directions.sdp"),
    include_str!("../../src/media/testdata/offer-gstreamer.sdp"),
];

/// A small offer: parses quickly, so more of the mutations land in the
/// lines the checks look at.
pub const SMALL_SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE 0 1\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef012345\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
    a=msid:s a1\r\na=rtpmap:111 opus/48000/2\r\n\
    a=candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host generation 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n\
    a=msid:s v1\r\na=rtpmap:96 VP8/90000\r\na=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l\r\n";

/// Public keys of the test suite, each family (and a too-small RSA key).
pub const PUBLIC_PEMS: &[&[u8]] = &[
    include_bytes!("../keys/rsa_public.pem"),
    include_bytes!("../keys/rsa_public_pkcs1.pem"),
    include_bytes!("../keys/rsa1024_public.pem"),
    include_bytes!("../keys/ec_public.pem"),
    include_bytes!("../keys/ec384_public.pem"),
    include_bytes!("../keys/ed_public.pem"),
];

/// Private keys of the test suite (configured by mistake, they are refused).
pub const PRIVATE_PEMS: &[&[u8]] = &[
    include_bytes!("../keys/rsa_private.pem"),
    include_bytes!("../keys/ec_private.pem"),
    include_bytes!("../keys/ec384_private.pem"),
    include_bytes!("../keys/ed_private.pem"),
];

pub const RSA_PRIVATE: &[u8] = include_bytes!("../keys/rsa_private.pem");
pub const RSA_PUBLIC: &[u8] = include_bytes!("../keys/rsa_public.pem");
pub const EC_PRIVATE: &[u8] = include_bytes!("../keys/ec_private.pem");
pub const EC_PUBLIC: &[u8] = include_bytes!("../keys/ec_public.pem");
pub const EC384_PRIVATE: &[u8] = include_bytes!("../keys/ec384_private.pem");
pub const EC384_PUBLIC: &[u8] = include_bytes!("../keys/ec384_public.pem");
pub const ED_PRIVATE: &[u8] = include_bytes!("../keys/ed_private.pem");
pub const ED_PUBLIC: &[u8] = include_bytes!("../keys/ed_public.pem");

/// Candidate lines as browsers and stacks trickle them.
pub const CANDIDATES: &[&str] = &[
    "candidate:842163049 1 udp 1677729535 203.0.113.7 61234 typ srflx raddr 192.168.1.20 rport 61234 generation 0 ufrag 4ZcD network-cost 999",
    "candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host generation 0 ufrag abcd network-id 1",
    "candidate:3 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active generation 0",
    "candidate:0 1 UDP 2122252543 2001:db8::5 40000 typ host",
    "candidate:1 1 UDP 2122187007 7c2b0a1e-5d3f-4c4e-9d1a-0f1e2d3c4b5a.local 50001 typ host",
    "candidate:5 1 UDP 8331263 198.51.100.4 3478 typ relay raddr 203.0.113.7 rport 61234",
    "candidate:a1b2 1 udp 2130706431 10.77.0.2 5000 typ host",
    "a=candidate:2 1 udp 1 10.1.2.3 9 typ host",
    "candidate: 1 1 udp 1 10.9.9.9 5005 typ host",
];

/// Client messages: every example docs/PROTOCOL.md gives that is JSON, the
/// SDP placeholders filled with real offers, and the lenient forms the
/// parser accepts (SDP objects, candidate strings, numeric ids).
pub fn client_messages() -> &'static [String] {
    static M: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    M.get_or_init(protocol_examples)
}

fn protocol_examples() -> Vec<String> {
    let doc = include_str!("../../docs/PROTOCOL.md");
    let mut out: Vec<String> = Vec::new();
    for span in doc.split('`').skip(1).step_by(2) {
        if !span.starts_with("{\"type\"") {
            continue;
        }
        let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(span) else {
            continue;
        };
        out.push(span.to_owned());
        let mut filled = false;
        for field in ["offer", "answer"] {
            if map.contains_key(field) {
                map.insert(field.to_owned(), Value::String(SMALL_SDP.to_owned()));
                filled = true;
            }
        }
        if map.get("token").is_some() {
            map.insert("token".to_owned(), Value::String(SAMPLE_JWT.to_owned()));
            filled = true;
        }
        if filled {
            out.push(Value::Object(map).to_string());
        }
    }
    assert!(out.len() >= 20, "PROTOCOL.md examples not found: {out:?}");
    let sdp = serde_json::to_string(SDPS[5]).expect("a string");
    let small = serde_json::to_string(SMALL_SDP).expect("a string");
    out.extend([
        format!(r#"{{"type":"publish-offer","roomName":"r","offer":{sdp},"requestId":1}}"#),
        format!(r#"{{"type":"publish-offer","offer":{{"type":"offer","sdp":{small}}},"requestId":"a"}}"#),
        format!(r#"{{"type":"subscribe-answer","roomName":"r","publisherId":7,"answer":{{"type":"answer","sdp":{small}}}}}"#),
        format!(r#"{{"type":"subscribe-prepare","roomName":"r","offer":{small}}}"#),
        r#"{"type":"publish-ice-candidate","roomName":"r","candidate":{"candidate":"candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}"#.to_owned(),
        r#"{"type":"subscribe-ice-candidate","roomName":"r","candidate":"a=candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host"}"#.to_owned(),
        r#"{"type":"publish-ice-candidate","roomName":"r","candidate":null}"#.to_owned(),
        r#"{"type":"subscribe-ice-candidate","candidate":""}"#.to_owned(),
        r#"{"type":"subscribe-request","roomName":"r","publisherId":7,"requestId":3}"#.to_owned(),
        r#"{"type":"unsubscribe","roomName":"r","publisherId":"7","requestId":-1.5}"#.to_owned(),
        r#"{"type":"signal","roomName":"r","to":42,"data":{"kind":"hello","n":[1,2.5,null,true],"s":"é😀"}}"#.to_owned(),
        r#"{"type":"chat","roomName":"r","text":"héllo 😀"}"#.to_owned(),
        r#"{"type":"join","roomName":"room with spaces/and/slashes"}"#.to_owned(),
        r#"{"type":"ping","requestId":"p1"}"#.to_owned(),
    ]);
    out
}

/// A token's shape (not signed by any key the target uses).
const SAMPLE_JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiIsImV4cCI6MTc5NjUzODU1NH0.ziCDFVzENvBwgIhRldUhVoBirO4rPJ-pHQh3iM4cgo4";
