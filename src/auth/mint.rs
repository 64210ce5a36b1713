//! Minting tokens: HS256 with the server's own secret (`GET /dev/token`,
//! tests), [`Signer`] with the deployment's secret or private key (the
//! `sfuctl` CLI), and the random dev-mode secret.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
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
        sign_claims(
            Algorithm::HS256,
            key,
            claims,
            self.issuer.as_deref(),
            self.audience.as_deref(),
        )
    }
}

/// Mints tokens outside the server (the `sfuctl` CLI) with the key the
/// server verifies with: its shared secret, or the private half of its
/// public key. The claims are those of [`Verifier::issue_token`].
pub struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// HS256 with a shared secret (the server's `JWT_SECRET`).
    pub fn secret(
        secret: &[u8],
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Signer, AuthError> {
        if secret.is_empty() {
            return Err(AuthError::InvalidKey("the secret is empty".into()));
        }
        Ok(Signer {
            alg: Algorithm::HS256,
            key: EncodingKey::from_secret(secret),
            issuer,
            audience,
        })
    }

    /// A PEM private key (RSA, EC or Ed25519; PKCS#1, SEC1 or PKCS#8).
    /// `alg` names the algorithm (`RS256`, `PS384`, `ES384`, …); by
    /// default RS256, ES256 or EdDSA by the key's kind.
    pub fn private_pem(
        pem: &[u8],
        alg: Option<&str>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Signer, AuthError> {
        let bad = |e: jsonwebtoken::errors::Error| AuthError::InvalidKey(e.to_string());
        let (alg, key) = match alg {
            Some(name) => {
                let alg: Algorithm = name
                    .parse()
                    .map_err(|_| AuthError::InvalidKey(format!("unknown algorithm {name}")))?;
                let key = match alg {
                    Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512 => EncodingKey::from_rsa_pem(pem).map_err(bad)?,
                    Algorithm::ES256 | Algorithm::ES384 => {
                        EncodingKey::from_ec_pem(pem).map_err(bad)?
                    }
                    Algorithm::EdDSA => EncodingKey::from_ed_pem(pem).map_err(bad)?,
                    _ => {
                        return Err(AuthError::InvalidKey(format!(
                            "{name} is not a private-key algorithm"
                        )))
                    }
                };
                (alg, key)
            }
            None => {
                if let Ok(k) = EncodingKey::from_ed_pem(pem) {
                    (Algorithm::EdDSA, k)
                } else if let Ok(k) = EncodingKey::from_ec_pem(pem) {
                    (Algorithm::ES256, k)
                } else {
                    (
                        Algorithm::RS256,
                        EncodingKey::from_rsa_pem(pem).map_err(bad)?,
                    )
                }
            }
        };
        Ok(Signer {
            alg,
            key,
            issuer,
            audience,
        })
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> String {
        format!("{:?}", self.alg)
    }

    /// Mints a token.
    pub fn mint(&self, claims: &TokenRequest) -> Result<String, AuthError> {
        sign_claims(
            self.alg,
            &self.key,
            claims,
            self.issuer.as_deref(),
            self.audience.as_deref(),
        )
    }
}

/// The claims of a [`TokenRequest`], signed.
fn sign_claims(
    alg: Algorithm,
    key: &EncodingKey,
    claims: &TokenRequest,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<String, AuthError> {
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
    if let Some(iss) = issuer {
        out.insert("iss".into(), Value::String(iss.to_owned()));
    }
    if let Some(aud) = audience {
        out.insert("aud".into(), Value::String(aud.to_owned()));
    }
    let token = jsonwebtoken::encode(&Header::new(alg), &out, key)
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
    fn signer_tokens_verify_with_the_servers_key() {
        let req = TokenRequest {
            sub: "cli".into(),
            name: None,
            rooms: Some(vec!["r".into()]),
            can_publish: false,
            can_subscribe: true,
            admin: true,
            ttl_secs: 60,
        };
        let s = Signer::secret(SECRET, None, None).unwrap();
        let g = hs_verifier().verify(&s.mint(&req).unwrap()).unwrap();
        assert!(g.admin && !g.can_publish && g.can_subscribe);
        for (private, public, alg) in [
            (RSA_PRIVATE, RSA_PUBLIC, "RS256"),
            (EC_PRIVATE, EC_PUBLIC, "ES256"),
            (ED_PRIVATE, ED_PUBLIC, "EdDSA"),
        ] {
            let s = Signer::private_pem(private, None, None, None).unwrap();
            assert_eq!(s.algorithm(), alg);
            let g = pem_verifier(public).verify(&s.mint(&req).unwrap()).unwrap();
            assert_eq!(g.participant_id, "cli");
        }
        let s = Signer::private_pem(RSA_PRIVATE, Some("PS256"), None, None).unwrap();
        pem_verifier(RSA_PUBLIC)
            .verify(&s.mint(&req).unwrap())
            .unwrap();
        assert!(Signer::private_pem(b"not a key", None, None, None).is_err());
        assert!(Signer::private_pem(RSA_PRIVATE, Some("HS256"), None, None).is_err());
        assert!(Signer::secret(b"", None, None).is_err());
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
