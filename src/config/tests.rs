//! Settings from flags and environment: defaults, validation, every error reported.

use super::*;
use clap::Parser;

fn parse(args: &[&str]) -> Result<Config, Vec<String>> {
    let mut full = vec!["rheo-sfu"];
    full.extend_from_slice(args);
    Config::from_cli(Cli::try_parse_from(full).expect("clap parse"))
}

#[test]
fn defaults_are_dev_mode() {
    let c = parse(&[]).unwrap();
    assert!(c.is_dev());
    assert_eq!(c.listen.port(), 9000);
}

#[test]
fn forwarding_budget_defaults_per_core_and_zero_disables() {
    let auto = parse(&[]).unwrap().media.max_forwarded_tracks;
    assert_eq!(auto, default_forward_limit());
    assert!(auto >= FORWARDED_TRACKS_PER_CORE);
    let off = parse(&["--max-forwarded-tracks", "0"]).unwrap();
    assert_eq!(off.media.max_forwarded_tracks, 0);
    let set = parse(&["--max-forwarded-tracks", "12"]).unwrap();
    assert_eq!(set.media.max_forwarded_tracks, 12);
}

#[test]
fn all_errors_reported_together() {
    let errors = parse(&[
        "--jwt-secret",
        "short",
        "--rtc-min-port",
        "5000",
        "--rtc-max-port",
        "4000",
        "--ice-servers",
        "http://x",
        "--max-rooms",
        "0",
    ])
    .unwrap_err();
    assert_eq!(errors.len(), 4, "{errors:?}");
}

#[test]
fn cluster_settings() {
    assert!(parse(&[]).unwrap().cluster.is_none());
    let errors = parse(&["--cluster-mode"]).unwrap_err();
    assert!(errors[0].contains("REDIS_URL"), "{errors:?}");
    let errors = parse(&["--cluster-mode", "--redis-url", "http://x"]).unwrap_err();
    assert!(errors[0].contains("redis://"), "{errors:?}");
    let c = parse(&[
        "--cluster-mode",
        "--redis-url",
        "redis://127.0.0.1:6379",
        "--announced-ips",
        "10.0.0.5",
        "--port",
        "9001",
        "--placement",
        "least-loaded",
    ])
    .unwrap();
    let cl = c.cluster.expect("cluster settings");
    assert_eq!(cl.advertise_url, "ws://10.0.0.5:9001/ws");
    assert_eq!(cl.placement, Placement::LeastLoaded);
    assert_eq!(cl.room_lease, Duration::from_secs(10));
    assert_eq!(cl.node_ttl, Duration::from_secs(3));
    let errors = parse(&[
        "--cluster-mode",
        "--redis-url",
        "redis://x",
        "--room-lease-ms",
        "10",
        "--advertise-url",
        "http://x",
    ])
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn ip_networks() {
    let n: IpNet = "10.0.0.0/8".parse().unwrap();
    assert!(n.contains("10.1.2.3".parse().unwrap()));
    assert!(!n.contains("11.0.0.1".parse().unwrap()));
    assert!(!n.contains("::1".parse().unwrap()));
    let one: IpNet = "192.0.2.7".parse().unwrap();
    assert_eq!(one.prefix, 32);
    assert!(one.contains("192.0.2.7".parse().unwrap()));
    assert!(!one.contains("192.0.2.8".parse().unwrap()));
    let all: IpNet = "::/0".parse().unwrap();
    assert!(all.contains("fe80::1".parse().unwrap()));
    assert!("10.0.0.0/33".parse::<IpNet>().is_err());
    assert!("nope/8".parse::<IpNet>().is_err());
    let errors = parse(&[
        "--candidate-allow",
        "127.0.0.0/8,bad",
        "--max-candidates-per-pc",
        "0",
    ])
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn public_ip_settings() {
    assert_eq!(parse(&[]).unwrap().media.public_ip, PublicIpSetting::Off);
    let c = parse(&["--public-ip", "203.0.113.10", "--announced-ips", "10.0.0.5"]).unwrap();
    let PublicIpSetting::Static(map) = c.media.public_ip else {
        panic!("static mapping expected")
    };
    assert_eq!(
        map.map("10.0.0.5".parse().unwrap()),
        Some("203.0.113.10".parse().unwrap())
    );
    let c = parse(&["--public-ip", "auto", "--stun-url", "stun:10.0.0.1"]).unwrap();
    assert_eq!(
        c.media.public_ip,
        PublicIpSetting::Auto {
            stun_server: "10.0.0.1:3478".to_owned()
        }
    );
    let errors = parse(&["--public-ip", "auto"]).unwrap_err();
    assert!(errors[0].contains("STUN_URL"), "{errors:?}");
    let errors = parse(&["--public-ip", "auto,1.2.3.4"]).unwrap_err();
    assert!(errors[0].contains("combined"), "{errors:?}");
    let errors = parse(&[
        "--public-ip",
        "203.0.113.10/10.0.0.6,nope",
        "--announced-ips",
        "10.0.0.5",
        "--stun-url",
        "http://x",
    ])
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let errors = parse(&[
        "--public-ip",
        "203.0.113.10/10.0.0.6",
        "--announced-ips",
        "10.0.0.5",
    ])
    .unwrap_err();
    assert!(errors[0].contains("not in ANNOUNCED_IPS"), "{errors:?}");
}

#[test]
fn turn_settings() {
    assert!(parse(&[]).unwrap().turn.is_none());
    let c = parse(&[
        "--turn-urls",
        "turn:t.example:3478?transport=udp,stun:t.example",
        "--turn-secret",
        "s3cret",
    ])
    .unwrap();
    let t = c.turn.expect("turn settings");
    assert_eq!(t.urls.len(), 2);
    assert_eq!(t.ttl, Duration::from_secs(86_400));
    let errors = parse(&["--turn-urls", "turn:t", "--turn-ttl", "5"]).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("TURN_SECRET"), "{errors:?}");
    let errors = parse(&["--turn-secret", "x", "--turn-urls", "http://t"]).unwrap_err();
    assert!(errors[0].contains("must start with"), "{errors:?}");
    let errors = parse(&["--turn-secret", "x"]).unwrap_err();
    assert!(errors[0].contains("TURN_URLS is not"), "{errors:?}");
}

#[test]
fn tls_settings() {
    assert!(parse(&[]).unwrap().tls.is_none());
    let errors = parse(&["--tls-cert-path", "/x.pem"]).unwrap_err();
    assert!(errors[0].contains("set both TLS_CERT_PATH"), "{errors:?}");
    let errors = parse(&[
        "--tls-cert-path",
        "/nonexistent/c.pem",
        "--tls-key-path",
        "/nonexistent/k.pem",
    ])
    .unwrap_err();
    assert!(
        errors[0].starts_with("TLS_CERT_PATH /nonexistent/c.pem: cannot read"),
        "{errors:?}"
    );
}

#[test]
fn secret_and_key_file_conflict() {
    let errors = parse(&[
        "--jwt-secret",
        "0123456789abcdef0",
        "--jwt-public-key-file",
        "/x",
    ])
    .unwrap_err();
    assert!(errors[0].contains("not both"));
}
