//! TURN REST credentials (the time-limited scheme of coturn's
//! `use-auth-secret`, draft-uberti-behave-turn-rest): username
//! `expiry:participantId` (expiry in Unix seconds), password
//! `base64(HMAC-SHA1(TURN_SECRET, username))`. The TURN server shares
//! the secret and checks both the signature and the expiry, so the SFU
//! never talks to it.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
pub use signaling::IceServer;

/// `TURN_URLS`, `TURN_SECRET`, `TURN_TTL`.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnSettings {
    /// ICE server URLs handed to clients (`turn:`, `turns:`, `stun:`).
    pub urls: Vec<String>,
    /// Shared secret of the TURN server; `None` when only STUN URLs are given.
    pub secret: Option<Vec<u8>>,
    /// How long credentials are valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSettings")
            .field("urls", &self.urls)
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Credentials minted for one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    /// The ICE servers to give the client.
    pub servers: Vec<IceServer>,
    /// When the credentials expire (Unix seconds).
    pub expires_at: u64,
}

impl TurnSettings {
    /// Credentials for `participant_id`, valid from `now` (Unix seconds)
    /// for the TTL.
    pub fn mint(&self, participant_id: &str, now: u64) -> Minted {
        let expires_at = now.saturating_add(self.ttl.as_secs());
        let (username, credential) = match &self.secret {
            Some(secret) => {
                let username = format!("{expires_at}:{participant_id}");
                let credential = password(secret, &username);
                (Some(username), Some(credential))
            }
            None => (None, None),
        };
        Minted {
            servers: vec![IceServer {
                urls: self.urls.clone(),
                username,
                credential,
            }],
            expires_at,
        }
    }

    /// When to send fresh credentials to a session that got some at
    /// `minted_at`: a tenth of the TTL before they expire (at least 30 s
    /// before), so a client that gathers again (a new PeerConnection, an
    /// ICE restart) never holds expired ones.
    pub fn refresh_after(&self) -> Duration {
        let margin = (self.ttl / 10).max(Duration::from_secs(30));
        self.ttl.saturating_sub(margin).max(Duration::from_secs(1))
    }
}

/// `base64(HMAC-SHA1(secret, username))`.
pub fn password(secret: &[u8], username: &str) -> String {
    // Invariant: HMAC takes keys of any length (longer ones are hashed),
    // so `new_from_slice` never fails for it.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts keys of every length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coturn_rest_scheme() {
        // Computed independently: python3 -c 'import hmac,hashlib,base64;
        // print(base64.b64encode(hmac.new(b"north", b"1700000000:alice",
        // hashlib.sha1).digest()).decode())'
        assert_eq!(password(b"north", "1700000000:alice"), PY_VECTOR);
        let s = TurnSettings {
            urls: vec!["turn:turn.example.org:3478".into()],
            secret: Some(b"north".to_vec()),
            ttl: Duration::from_secs(3600),
        };
        let m = s.mint("alice", 1_699_996_400);
        assert_eq!(m.expires_at, 1_700_000_000);
        assert_eq!(m.servers[0].username.as_deref(), Some("1700000000:alice"));
        assert_eq!(m.servers[0].credential.as_deref(), Some(PY_VECTOR));
        assert_eq!(s.refresh_after(), Duration::from_secs(3240));
        let v = serde_json::to_value(&m.servers).unwrap();
        assert_eq!(v[0]["urls"][0], "turn:turn.example.org:3478");
    }

    #[test]
    fn stun_only_has_no_credentials() {
        let s = TurnSettings {
            urls: vec!["stun:stun.example.org".into()],
            secret: None,
            ttl: Duration::from_secs(60),
        };
        let v = serde_json::to_value(&s.mint("x", 0).servers).unwrap();
        assert_eq!(v, serde_json::json!([{"urls": ["stun:stun.example.org"]}]));
        assert_eq!(s.refresh_after(), Duration::from_secs(30));
    }

    const PY_VECTOR: &str = "Cd/49soE35ICqcJF/bCTn8Z4OyE=";
}
