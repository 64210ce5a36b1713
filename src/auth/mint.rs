//! Dev-mode tokens: minting HS256 tokens with the server's own secret
//! (`GET /dev/token`, tests) and making that random secret.

use jsonwebtoken::{Algorithm, Header};
use serde_json::{Map, Value};

use super::claims::now_secs;
use super::verify::MAX_TOKEN_LEN;
use super::{AuthError, Verifier};

/// What a dev-mode token minted by [`Verifier::issue_token`] grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Participant id (`sub`); must not be empty.
    pub sub: String,
    /// Display name (`name`); when `None` the verifier falls back to `sub`.
    pub name: Option<String>,
    /// Rooms the token is limited to (`rooms`); `None` means any room.
    pub rooms: Option<Vec<String>>,
    /// `canPublish`.
    pub can_publish: bool,
    /// `canSubscribe`.
    pub can_subscribe: bool,
    /// `admin`.
    pub admin: bool,
    /// Lifetime: `exp` is now plus this many seconds.
    pub ttl_secs: u64,
}

impl Verifier {
    /// Mints an HS256 token for `claims` (dev mode). Only for a shared
    /// secret ([`JwtKey::Dev`](super::JwtKey::Dev),
    /// [`JwtKey::Secret`](super::JwtKey::Secret)); a public-key verifier
    /// returns [`AuthError::CannotIssue`]. The token carries the configured
    /// issuer and audience, so it verifies with this same verifier.
    pub fn issue_token(&self, claims: &TokenRequest) -> Result<String, AuthError> {
        let Some(key) = &self.encoding else {
            return Err(AuthError::CannotIssue(self.family));
        };
        if claims.sub.is_empty() {
            return Err(AuthError::InvalidRequest("sub must not be empty".into()));
        }
        let now = now_secs();
        let mut out = Map::new();
        out.insert("sub".into(), Value::String(claims.sub.clone()));
        if let Some(name) = &claims.name {
            out.insert("name".into(), Value::String(name.clone()));
        }
        if let Some(rooms) = &claims.rooms {
            if rooms.iter().any(String::is_empty) {
                return Err(AuthError::InvalidRequest(
                    "room names must not be empty".into(),
                ));
            }
            let rooms = rooms.iter().cloned().map(Value::String).collect();
            out.insert("rooms".into(), Value::Array(rooms));
        }
        out.insert("canPublish".into(), Value::Bool(claims.can_publish));
        out.insert("canSubscribe".into(), Value::Bool(claims.can_subscribe));
        out.insert("admin".into(), Value::Bool(claims.admin));
        out.insert("iat".into(), Value::from(now));
        out.insert(
            "exp".into(),
            Value::from(now.saturating_add(claims.ttl_secs)),
        );
        if let Some(iss) = &self.issuer {
            out.insert("iss".into(), Value::String(iss.clone()));
        }
        if let Some(aud) = &self.audience {
            out.insert("aud".into(), Value::String(aud.clone()));
        }
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &out, key)
            .map_err(|e| AuthError::InvalidKey(e.to_string()))?;
        // `verify` refuses longer tokens before decoding them: minting one
        // would hand out a token that can never be used.
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::InvalidRequest(format!(
                "the token would be longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        Ok(token)
    }
}

/// Random 32-byte secret for dev mode, returned hex-encoded as bytes
/// (64 ASCII hex digits; those ASCII bytes are the HMAC key).
pub fn random_secret() -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let raw: [u8; 32] = rand::random();
    raw.iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_support::*;
    use crate::auth::{AuthConfig, JwtKey, KeyFamily, RoomScope};
    use jsonwebtoken::EncodingKey;

    // --- issuing ----------------------------------------------------------------

    #[test]
    fn issue_token_round_trip() {
        let mut c = cfg(JwtKey::Secret(SECRET.to_vec()));
        c.issuer = Some("rheo-sfu".into());
        c.audience = Some("rheo".into());
        let v = Verifier::new(&c).unwrap();
        let req = TokenRequest {
            sub: "bob".into(),
            name: Some("Bob".into()),
            rooms: Some(vec!["lobby".into(), "stage".into()]),
            can_publish: false,
            can_subscribe: true,
            admin: true,
            ttl_secs: 600,
        };
        let before = now();
        let token = v.issue_token(&req).unwrap();
        let g = v.verify(&token).unwrap();
        assert_eq!(g.participant_id, "bob");
        assert_eq!(g.username, "Bob");
        assert_eq!(
            g.rooms,
            RoomScope::Only(vec!["lobby".into(), "stage".into()])
        );
        assert!(!g.can_publish && g.can_subscribe && g.admin);
        assert!(g.expires_at >= before + 600 && g.expires_at <= now() + 600);

        // HS256 header.
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);

        // Defaults: no name, any room.
        let token = v
            .issue_token(&TokenRequest {
                name: None,
                rooms: None,
                ..req.clone()
            })
            .unwrap();
        let g = v.verify(&token).unwrap();
        assert_eq!(g.username, "bob");
        assert_eq!(g.rooms, RoomScope::Any);

        // Another secret cannot verify it.
        let other = Verifier::new(&AuthConfig {
            key: JwtKey::Secret(b"different".to_vec()),
            ..c.clone()
        })
        .unwrap();
        assert!(matches!(other.verify(&token), Err(AuthError::BadSignature)));

        // Zero TTL is already expired.
        let token = v
            .issue_token(&TokenRequest {
                ttl_secs: 0,
                ..req.clone()
            })
            .unwrap();
        assert!(matches!(v.verify(&token), Err(AuthError::Expired)));
    }

    #[test]
    fn issue_token_bad_requests() {
        let v = hs_verifier();
        let req = TokenRequest {
            sub: String::new(),
            name: None,
            rooms: None,
            can_publish: true,
            can_subscribe: true,
            admin: false,
            ttl_secs: 60,
        };
        assert!(matches!(
            v.issue_token(&req),
            Err(AuthError::InvalidRequest(_))
        ));
        let req = TokenRequest {
            sub: "a".into(),
            rooms: Some(vec!["".into()]),
            ..req
        };
        assert!(matches!(
            v.issue_token(&req),
            Err(AuthError::InvalidRequest(_))
        ));
        // Found by the fuzz harness (tests/fuzz): a sub this long made a
        // token that `verify` refuses as too long.
        let req = TokenRequest {
            sub: "%".repeat(MAX_TOKEN_LEN),
            rooms: None,
            ..req
        };
        assert!(matches!(
            v.issue_token(&req),
            Err(AuthError::InvalidRequest(why)) if why.contains("longer")
        ));
    }

    #[test]
    fn issue_token_errors_for_public_keys() {
        let req = TokenRequest {
            sub: "a".into(),
            name: None,
            rooms: None,
            can_publish: true,
            can_subscribe: true,
            admin: false,
            ttl_secs: 60,
        };
        for (pem, family) in [
            (RSA_PUBLIC, KeyFamily::Rsa),
            (EC_PUBLIC, KeyFamily::Ec),
            (ED_PUBLIC, KeyFamily::Ed),
        ] {
            let r = pem_verifier(pem).issue_token(&req);
            assert_eq!(r, Err(AuthError::CannotIssue(family)));
        }
    }

    #[test]
    fn random_secret_is_hex_and_usable() {
        let a = random_secret();
        let b = random_secret();
        assert_eq!(a.len(), 64);
        assert!(a
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        let v = Verifier::new(&cfg(JwtKey::Secret(a.clone()))).unwrap();
        let token = sign(Algorithm::HS256, &EncodingKey::from_secret(&a), &base());
        v.verify(&token).unwrap();
    }
}
