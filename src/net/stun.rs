//! `PUBLIC_IP=auto`: one STUN binding request (RFC 8489) at start, sent
//! from the address ICE binds, so that the NAT maps the same address that
//! media will use; the XOR-MAPPED-ADDRESS of the answer is the public
//! address. Bounded: three tries (0.5 s, 1 s, 2 s), then a clear error.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use stun::agent::TransactionId;
use stun::message::{Getter, Message, BINDING_REQUEST, BINDING_SUCCESS};
use stun::xoraddr::XorMappedAddress;

/// Waits for an answer before sending again, then giving up.
const TRIES: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// Parses `STUN_URL` (`stun:host[:port]`, port 3478 by default) into `host:port`.
pub fn parse_url(url: &str) -> Result<String, String> {
    let rest = url.strip_prefix("stun:").ok_or_else(|| {
        format!("STUN_URL `{url}` must start with stun: (e.g. stun:stun.example.org:3478)")
    })?;
    let rest = rest.split('?').next().unwrap_or_default();
    if rest.is_empty() {
        return Err(format!("STUN_URL `{url}` names no host"));
    }
    // [v6]:port, [v6], host:port, host
    let has_port = match rest.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && (rest.starts_with('[') && host.ends_with(']') || !host.contains(':'))
                && port.parse::<u16>().is_ok()
        }
        None => false,
    };
    if has_port {
        Ok(rest.to_owned())
    } else if rest.contains(':') && !rest.starts_with('[') {
        Ok(format!("[{rest}]:3478"))
    } else {
        Ok(format!("{rest}:3478"))
    }
}

/// Asks the STUN server `server` (`host:port`) for the address this host's
/// `local` address (unspecified: any IPv4 address) appears as.
pub async fn discover(server: &str, local: Option<IpAddr>) -> Result<IpAddr, String> {
    let fail = |why: String| format!("PUBLIC_IP=auto: STUN server {server}: {why}");
    let target: SocketAddr = tokio::net::lookup_host(server)
        .await
        .map_err(|e| fail(format!("cannot resolve: {e}")))?
        .find(|a| local.is_none_or(|l| l.is_ipv4() == a.is_ipv4()))
        .ok_or_else(|| fail("resolves to no address of the right family".to_owned()))?;
    let bind = local.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let socket = tokio::net::UdpSocket::bind((bind, 0))
        .await
        .map_err(|e| fail(format!("cannot bind {bind}: {e}")))?;
    let mut request = Message::new();
    request
        .build(&[Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)])
        .map_err(|e| fail(format!("building the request: {e}")))?;
    let mut buf = vec![0u8; 1500];
    for wait in TRIES {
        socket
            .send_to(&request.raw, target)
            .await
            .map_err(|e| fail(format!("cannot send to {target}: {e}")))?;
        let deadline = tokio::time::Instant::now() + wait;
        // Datagrams that are not the answer (strays, other transactions)
        // are skipped until this try's time is up.
        while let Ok(got) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            let Ok((n, from)) = got else { break };
            if from != target {
                continue;
            }
            let mut answer = Message::new();
            answer.raw = buf[..n].to_vec();
            if answer.decode().is_err() || answer.transaction_id != request.transaction_id {
                continue;
            }
            if answer.typ != BINDING_SUCCESS {
                return Err(fail(format!("answered {}", answer.typ)));
            }
            let mut mapped = XorMappedAddress::default();
            mapped
                .get_from(&answer)
                .map_err(|e| fail(format!("no XOR-MAPPED-ADDRESS in the answer: {e}")))?;
            return Ok(mapped.ip);
        }
    }
    Err(fail(format!(
        "no answer within {:.1} s (is it reachable over UDP from {bind}?)",
        TRIES.iter().sum::<Duration>().as_secs_f32()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("stun:stun.example.org").unwrap(),
            "stun.example.org:3478"
        );
        assert_eq!(parse_url("stun:10.0.0.1:19302").unwrap(), "10.0.0.1:19302");
        assert_eq!(
            parse_url("stun:[2001:db8::1]:5000").unwrap(),
            "[2001:db8::1]:5000"
        );
        assert_eq!(parse_url("stun:2001:db8::1").unwrap(), "[2001:db8::1]:3478");
        assert_eq!(parse_url("stun:h:1?transport=udp").unwrap(), "h:1");
        assert!(parse_url("turn:h:1").is_err());
        assert!(parse_url("stun:").is_err());
    }

    /// A real exchange on loopback with a minimal STUN responder.
    #[tokio::test]
    async fn discovers_the_mapped_address_and_times_out_clearly() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let responder = tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let mut req = Message::new();
            req.raw = buf[..n].to_vec();
            req.decode().unwrap();
            let mut resp = Message::new();
            resp.build(&[
                Box::new(req.transaction_id),
                Box::new(BINDING_SUCCESS),
                Box::new(XorMappedAddress {
                    ip: "198.51.100.9".parse().unwrap(),
                    port: from.port(),
                }),
            ])
            .unwrap();
            server.send_to(&resp.raw, from).await.unwrap();
        });
        let ip = discover(&addr.to_string(), Some("127.0.0.1".parse().unwrap()))
            .await
            .unwrap();
        assert_eq!(ip, "198.51.100.9".parse::<IpAddr>().unwrap());
        responder.await.unwrap();

        // Nobody answers: a bounded wait and an error that says what failed.
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let err = discover(
            &silent.local_addr().unwrap().to_string(),
            Some("127.0.0.1".parse().unwrap()),
        )
        .await
        .unwrap_err();
        assert!(err.contains("no answer within 3.5 s"), "{err}");
    }
}
