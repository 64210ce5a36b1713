//! Claims to [`Grants`]: the claim rules of the wire contract (see the
//! module docs of [`crate::auth`]), applied to a payload whose signature is
//! already verified.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::{malformed, AuthError, Verifier};

/// What a verified token allows its bearer to do. Serializable: a node
/// that forwards a session to the room's owner hands the grants over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grants {
    /// From `sub`.
    pub participant_id: String,
    /// From `name`, else `username`, else `sub`.
    pub username: String,
    /// From `room` / `rooms`.
    pub rooms: RoomScope,
    /// From `canPublish` (default `true`).
    pub can_publish: bool,
    /// From `canSubscribe` (default `true`).
    pub can_subscribe: bool,
    /// From `admin` (default `false`).
    pub admin: bool,
    /// The token's `exp`, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Which rooms a token may join.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoomScope {
    /// Any room.
    Any,
    /// Only these rooms (deduplicated, in token order). Empty means none.
    Only(Vec<String>),
}

impl Grants {
    /// Whether the token lets its bearer join `room`.
    pub fn allows_room(&self, room: &str) -> bool {
        match &self.rooms {
            RoomScope::Any => true,
            RoomScope::Only(rooms) => rooms.iter().any(|r| r == room),
        }
    }
}

impl Verifier {
    /// Applies the claim rules to a payload whose signature is verified.
    pub(super) fn grants_from_claims(
        &self,
        claims: &Map<String, Value>,
    ) -> Result<Grants, AuthError> {
        let now = now_secs();
        let slack = |t: u64| t.saturating_add(self.leeway);

        let exp = numeric_date(claims, "exp")?.ok_or(AuthError::MissingExp)?;
        if now >= slack(exp) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = numeric_date(claims, "nbf")? {
            if nbf > slack(now) {
                return Err(AuthError::NotYetValid);
            }
        }
        if let Some(iat) = numeric_date(claims, "iat")? {
            if iat > slack(now) {
                return Err(AuthError::IssuedInFuture);
            }
        }

        if let Some(expected) = &self.issuer {
            match claims.get("iss") {
                Some(Value::String(iss)) if iss == expected => {}
                _ => return Err(AuthError::WrongIssuer),
            }
        }
        if let Some(expected) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => aud == expected,
                Some(Value::Array(auds)) => auds
                    .iter()
                    .any(|a| matches!(a, Value::String(a) if a == expected)),
                _ => false,
            };
            if !ok {
                return Err(AuthError::WrongAudience);
            }
        }

        let participant_id = match claims.get("sub") {
            None | Some(Value::Null) => return Err(AuthError::MissingSub),
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(_) => return Err(AuthError::InvalidSub),
        };
        let username = match display_name(claims, "name")? {
            Some(name) => name,
            None => display_name(claims, "username")?.unwrap_or_else(|| participant_id.clone()),
        };

        Ok(Grants {
            participant_id,
            username,
            rooms: room_scope(claims)?,
            can_publish: flag(claims, "canPublish", true)?,
            can_subscribe: flag(claims, "canSubscribe", true)?,
            admin: flag(claims, "admin", false)?,
            expires_at: exp,
        })
    }
}

/// Seconds since the Unix epoch; 0 if the clock is before 1970.
pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A NumericDate claim: `None` when absent or null. Fractions are truncated.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            // `as` saturates for huge values; NaN/infinity cannot come from JSON.
            (None, Some(secs)) if secs.is_finite() && secs >= 0.0 => Ok(Some(secs as u64)),
            _ => Err(malformed(format!("{name} must be a non-negative number"))),
        },
        Some(_) => Err(malformed(format!("{name} must be a number"))),
    }
}

/// A display-name claim: `None` when absent, null or empty.
fn display_name(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(format!("{name} must be a string"))),
    }
}

/// A boolean claim with a default for absent or null.
fn flag(claims: &Map<String, Value>, name: &str, default: bool) -> Result<bool, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(malformed(format!("{name} must be a boolean"))),
    }
}

/// The rooms from `room` and `rooms`.
fn room_scope(claims: &Map<String, Value>) -> Result<RoomScope, AuthError> {
    let mut present = false;
    let mut names: Vec<&str> = Vec::new();
    match claims.get("room") {
        None | Some(Value::Null) => {}
        Some(Value::String(room)) => {
            present = true;
            names.push(room);
        }
        Some(_) => return Err(malformed("room must be a string")),
    }
    match claims.get("rooms") {
        None | Some(Value::Null) => {}
        Some(Value::Array(rooms)) => {
            present = true;
            for room in rooms {
                match room {
                    Value::String(room) => names.push(room),
                    _ => return Err(malformed("rooms must be an array of strings")),
                }
            }
        }
        Some(_) => return Err(malformed("rooms must be an array of strings")),
    }
    if names.iter().any(|r| r.is_empty()) {
        return Err(malformed("room names must not be empty"));
    }
    if !present || names.contains(&"*") {
        return Ok(RoomScope::Any);
    }
    let mut rooms: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !rooms.iter().any(|r| r == name) {
            rooms.push(name.to_string());
        }
    }
    Ok(RoomScope::Only(rooms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_support::*;
    use crate::auth::JwtKey;
    use serde_json::json;

    // --- valid tokens -------------------------------------------------------

    #[test]
    fn valid_hs256_token() {
        let exp = now() + 3600;
        let g = hs_verifier()
            .verify(&hs(json!({"sub": "alice", "exp": exp})))
            .unwrap();
        assert_eq!(
            g,
            Grants {
                participant_id: "alice".into(),
                username: "alice".into(),
                rooms: RoomScope::Any,
                can_publish: true,
                can_subscribe: true,
                admin: false,
                expires_at: exp,
            }
        );
    }

    #[test]
    fn unknown_claims_ignored_and_fractional_exp_ok() {
        let exp = now() + 3600;
        let g = hs_verifier()
            .verify(&hs(json!({
                "sub": "a", "exp": exp as f64 + 0.5, "video": {"x": [1, 2]}, "metadata": "m"
            })))
            .unwrap();
        assert_eq!(g.expires_at, exp);
    }

    #[test]
    fn numeric_sub() {
        let v = hs_verifier();
        let g = v.verify(&hs(claims(json!({"sub": 12345})))).unwrap();
        assert_eq!(g.participant_id, "12345");
        assert_eq!(g.username, "12345");
        let g = v.verify(&hs(claims(json!({"sub": -7})))).unwrap();
        assert_eq!(g.participant_id, "-7");
    }

    #[test]
    fn invalid_sub_types_and_empty() {
        let v = hs_verifier();
        for sub in [
            json!(""),
            json!(true),
            json!(1.5),
            json!([]),
            json!({"a": 1}),
        ] {
            assert!(
                matches!(
                    v.verify(&hs(claims(json!({ "sub": sub.clone() })))),
                    Err(AuthError::InvalidSub)
                ),
                "sub {sub}"
            );
        }
    }

    #[test]
    fn missing_sub() {
        let v = hs_verifier();
        let r = v.verify(&hs(json!({"exp": now() + 60})));
        assert!(matches!(r, Err(AuthError::MissingSub)), "{r:?}");
        let r = v.verify(&hs(json!({"sub": null, "exp": now() + 60})));
        assert!(matches!(r, Err(AuthError::MissingSub)), "{r:?}");
        assert_eq!(AuthError::MissingSub.to_string(), "missing sub claim");
    }

    #[test]
    fn name_username_default() {
        let v = hs_verifier();
        let name = |c| v.verify(&hs(claims(c))).unwrap().username;
        assert_eq!(name(json!({"name": "Alice"})), "Alice");
        assert_eq!(name(json!({"username": "ali"})), "ali");
        assert_eq!(name(json!({"name": "Alice", "username": "ali"})), "Alice");
        assert_eq!(name(json!({})), "alice");
        assert_eq!(name(json!({"name": "", "username": "ali"})), "ali");
        assert_eq!(name(json!({"name": null})), "alice");
        let r = v.verify(&hs(claims(json!({"name": 5}))));
        assert!(malformed_err(r).contains("name"));
    }

    #[test]
    fn room_claims() {
        let v = hs_verifier();
        let rooms = |c| v.verify(&hs(claims(c))).unwrap().rooms;

        assert_eq!(
            rooms(json!({"room": "r1"})),
            RoomScope::Only(vec!["r1".into()])
        );
        assert_eq!(
            rooms(json!({"rooms": ["r1", "r2", "r1"]})),
            RoomScope::Only(vec!["r1".into(), "r2".into()])
        );
        assert_eq!(
            rooms(json!({"room": "r0", "rooms": ["r1"]})),
            RoomScope::Only(vec!["r0".into(), "r1".into()])
        );
        assert_eq!(rooms(json!({"room": "*"})), RoomScope::Any);
        assert_eq!(rooms(json!({"rooms": ["r1", "*"]})), RoomScope::Any);
        assert_eq!(rooms(json!({"room": "r1", "rooms": ["*"]})), RoomScope::Any);
        assert_eq!(rooms(json!({})), RoomScope::Any);
        assert_eq!(rooms(json!({"rooms": []})), RoomScope::Only(vec![]));

        let g = v
            .verify(&hs(claims(json!({"rooms": ["r1", "r2"]}))))
            .unwrap();
        assert!(g.allows_room("r1") && g.allows_room("r2"));
        assert!(!g.allows_room("r3") && !g.allows_room("*") && !g.allows_room(""));
        let g = v.verify(&hs(base())).unwrap();
        assert!(g.allows_room("anything"));
        let g = v.verify(&hs(claims(json!({"rooms": []})))).unwrap();
        assert!(!g.allows_room("r1"));

        for bad in [
            json!({"room": 1}),
            json!({"room": ["r1"]}),
            json!({"rooms": "r1"}),
            json!({"rooms": ["r1", 2]}),
            json!({"room": ""}),
        ] {
            let r = v.verify(&hs(claims(bad.clone())));
            assert!(malformed_err(r).contains("room"), "{bad}");
        }
    }

    #[test]
    fn permission_flags() {
        let v = hs_verifier();
        let g = v
            .verify(&hs(claims(
                json!({"canPublish": false, "canSubscribe": false}),
            )))
            .unwrap();
        assert!(!g.can_publish && !g.can_subscribe && !g.admin);
        let g = v.verify(&hs(claims(json!({"canPublish": false})))).unwrap();
        assert!(!g.can_publish && g.can_subscribe);
        let g = v
            .verify(&hs(claims(json!({"canSubscribe": false, "admin": true}))))
            .unwrap();
        assert!(g.can_publish && !g.can_subscribe && g.admin);
    }

    #[test]
    fn permission_flags_wrong_type() {
        let v = hs_verifier();
        for (claim, value) in [
            ("canPublish", json!("false")),
            ("canSubscribe", json!(0)),
            ("admin", json!("true")),
            ("admin", json!(1)),
        ] {
            let r = v.verify(&hs(claims(json!({ claim: value }))));
            assert!(malformed_err(r).contains(claim));
        }
    }

    // --- times --------------------------------------------------------------

    #[test]
    fn expired() {
        let r = hs_verifier().verify(&hs(claims(json!({"exp": now() - 10}))));
        assert!(matches!(r, Err(AuthError::Expired)), "{r:?}");
        assert_eq!(AuthError::Expired.to_string(), "token expired");
    }

    #[test]
    fn leeway_applies_to_exp_nbf_iat() {
        let mut c = cfg(JwtKey::Secret(SECRET.to_vec()));
        c.leeway_secs = 120;
        let v = Verifier::new(&c).unwrap();
        let t = now();
        v.verify(&hs(claims(json!({"exp": t - 60})))).unwrap();
        v.verify(&hs(claims(json!({"nbf": t + 60})))).unwrap();
        v.verify(&hs(claims(json!({"iat": t + 60})))).unwrap();
        assert!(matches!(
            v.verify(&hs(claims(json!({"exp": t - 600})))),
            Err(AuthError::Expired)
        ));
        assert!(matches!(
            v.verify(&hs(claims(json!({"nbf": t + 600})))),
            Err(AuthError::NotYetValid)
        ));
        assert!(matches!(
            v.verify(&hs(claims(json!({"iat": t + 600})))),
            Err(AuthError::IssuedInFuture)
        ));
    }

    #[test]
    fn huge_leeway_does_not_overflow() {
        let mut c = cfg(JwtKey::Secret(SECRET.to_vec()));
        c.leeway_secs = u64::MAX;
        let v = Verifier::new(&c).unwrap();
        v.verify(&hs(
            json!({"sub": "a", "exp": u64::MAX, "nbf": u64::MAX, "iat": 0}),
        ))
        .unwrap();
        v.verify(&hs(json!({"sub": "a", "exp": 0}))).unwrap();
    }

    #[test]
    fn not_yet_valid() {
        let v = hs_verifier();
        let r = v.verify(&hs(claims(json!({"nbf": now() + 3600}))));
        assert!(matches!(r, Err(AuthError::NotYetValid)), "{r:?}");
        assert_eq!(AuthError::NotYetValid.to_string(), "token not yet valid");
        v.verify(&hs(claims(json!({"nbf": now() - 5})))).unwrap();
    }

    #[test]
    fn iat_in_future() {
        let v = hs_verifier();
        let r = v.verify(&hs(claims(json!({"iat": now() + 3600}))));
        assert!(matches!(r, Err(AuthError::IssuedInFuture)), "{r:?}");
        v.verify(&hs(claims(json!({"iat": now() - 5})))).unwrap();
    }

    #[test]
    fn missing_exp() {
        let r = hs_verifier().verify(&hs(json!({"sub": "alice"})));
        assert!(matches!(r, Err(AuthError::MissingExp)), "{r:?}");
        let r = hs_verifier().verify(&hs(json!({"sub": "alice", "exp": null})));
        assert!(matches!(r, Err(AuthError::MissingExp)), "{r:?}");
    }

    #[test]
    fn time_claims_wrong_type() {
        let v = hs_verifier();
        for (claim, value) in [
            ("exp", json!("9999999999")),
            ("exp", json!(-1)),
            ("nbf", json!(true)),
            ("iat", json!({"t": 1})),
            ("iat", json!(-5.5)),
        ] {
            let r = v.verify(&hs(claims(json!({ claim: value }))));
            assert!(malformed_err(r).contains(claim));
        }
    }

    // --- iss / aud ------------------------------------------------------------

    #[test]
    fn issuer() {
        let mut c = cfg(JwtKey::Secret(SECRET.to_vec()));
        c.issuer = Some("https://auth.example".into());
        let v = Verifier::new(&c).unwrap();
        v.verify(&hs(claims(json!({"iss": "https://auth.example"}))))
            .unwrap();
        for bad in [
            json!({"iss": "https://evil.example"}),
            json!({}),
            json!({"iss": ["https://auth.example"]}),
            json!({"iss": 1}),
        ] {
            let r = v.verify(&hs(claims(bad.clone())));
            assert!(matches!(r, Err(AuthError::WrongIssuer)), "{bad}: {r:?}");
        }
        assert_eq!(AuthError::WrongIssuer.to_string(), "wrong issuer");
        // Unconfigured: iss ignored.
        hs_verifier()
            .verify(&hs(claims(json!({"iss": "whoever"}))))
            .unwrap();
    }

    #[test]
    fn audience() {
        let mut c = cfg(JwtKey::Secret(SECRET.to_vec()));
        c.audience = Some("sfu".into());
        let v = Verifier::new(&c).unwrap();
        v.verify(&hs(claims(json!({"aud": "sfu"})))).unwrap();
        v.verify(&hs(claims(json!({"aud": ["api", "sfu"]}))))
            .unwrap();
        for bad in [
            json!({"aud": "api"}),
            json!({"aud": ["api", "web"]}),
            json!({"aud": []}),
            json!({}),
            json!({"aud": 7}),
        ] {
            let r = v.verify(&hs(claims(bad.clone())));
            assert!(matches!(r, Err(AuthError::WrongAudience)), "{bad}: {r:?}");
        }
        assert_eq!(AuthError::WrongAudience.to_string(), "wrong audience");
    }

    #[test]
    fn audience_ignored_when_unconfigured() {
        let v = hs_verifier();
        for aud in [json!("anything"), json!(["a", "b"]), json!(42)] {
            v.verify(&hs(claims(json!({ "aud": aud })))).unwrap();
        }
    }
}
