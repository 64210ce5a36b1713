//! Lenient serde helpers for the fields where the protocol accepts more than
//! one shape: an SDP as a string or `{type, sdp}`, a candidate as an object,
//! a bare string, null or "", an id as a string or an integer.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::types::CandidateInit;

/// SDP given as a string or as `{"type": "...", "sdp": "..."}`.
pub(crate) fn de_sdp<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Object(map) => match map.get("sdp") {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(D::Error::custom("SDP object needs a string field `sdp`")),
        },
        _ => Err(D::Error::custom(
            "SDP must be a string or an object {type, sdp}",
        )),
    }
}

/// Candidate given as an RTCIceCandidateInit object, a bare string, null or "".
pub(crate) fn de_candidate<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<CandidateInit>, D::Error> {
    use serde::de::Error;
    let normalize = |s: &str| s.trim().trim_start_matches("a=").to_owned();
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(CandidateInit {
            candidate: normalize(&s),
            sdp_mid: None,
            sdp_m_line_index: Some(0),
            username_fragment: None,
        })),
        v @ Value::Object(_) => {
            let mut c: CandidateInit = serde_json::from_value(v)
                .map_err(|e| D::Error::custom(format!("invalid candidate object: {e}")))?;
            if c.candidate.trim().is_empty() {
                return Ok(None);
            }
            c.candidate = normalize(&c.candidate);
            if c.sdp_mid.is_none() && c.sdp_m_line_index.is_none() {
                c.sdp_m_line_index = Some(0);
            }
            Ok(Some(c))
        }
        _ => Err(D::Error::custom(
            "candidate must be an object, a string or null",
        )),
    }
}

fn value_to_id<E: serde::de::Error>(v: Value) -> Result<String, E> {
    match v {
        Value::String(s) => Ok(s),
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        _ => Err(E::custom("id must be a string or an integer")),
    }
}

/// Id given as a string or an integer.
pub(crate) fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    value_to_id(Value::deserialize(d)?)
}

/// Optional id given as a string or an integer.
pub(crate) fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => value_to_id(v).map(Some),
    }
}
