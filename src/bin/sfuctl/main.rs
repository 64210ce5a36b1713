//! `sfuctl`: the operator's command line for rheo-sfu (docs/OPERATIONS.md,
//! "CLI"): mint tokens with the deployment's key, list and show rooms,
//! remove participants, close rooms, mute tracks, message a room, tail the
//! event stream.
//!
//! It reads the same key settings as the server (`JWT_SECRET`,
//! `JWT_ISSUER`, `JWT_AUDIENCE`; `JWT_PRIVATE_KEY_FILE` for key pairs,
//! whose public half the server has), as flags or environment variables,
//! like the server's own `config` (this binary is not the server: the
//! server's rule that only `config/` reads the environment is about the
//! server). Without `--token`, admin commands mint a one-minute admin token
//! with that key.

mod client;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hyper::Method;
use rheo_sfu::auth::{Signer, TokenRequest};
use serde_json::{json, Value};

use client::{segment, Server};

/// Operate a rheo-sfu server: tokens, rooms, participants, events.
#[derive(Debug, Parser)]
#[command(name = "sfuctl", version)]
struct Cli {
    /// The server's HTTP address (its PORT), e.g. http://10.0.0.5:9000.
    #[arg(
        long,
        env = "SFU_URL",
        default_value = "http://127.0.0.1:9000",
        global = true
    )]
    url: String,
    /// An admin token (a JWT with `"admin": true`). Default: one minted
    /// for this command with the key settings.
    #[arg(long, env = "SFU_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the server's JSON as it is (one object per line for events).
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    keys: Keys,
    #[command(subcommand)]
    command: Command,
}

/// The key tokens are signed with: the server's settings of the same names.
#[derive(Debug, Args)]
struct Keys {
    /// Shared secret (HS256), as the server's JWT_SECRET.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    jwt_secret: Option<String>,
    /// PEM private key (RSA, EC or Ed25519) whose public half is the
    /// server's JWT_PUBLIC_KEY_FILE.
    #[arg(long, env = "JWT_PRIVATE_KEY_FILE", global = true)]
    jwt_private_key_file: Option<PathBuf>,
    /// Algorithm for the private key (RS256, PS256, ES256, ES384, EdDSA,
    /// …); default by the key's kind: RS256, ES256 or EdDSA.
    #[arg(long, env = "JWT_ALG", global = true)]
    jwt_alg: Option<String>,
    /// `iss` claim (the server's JWT_ISSUER).
    #[arg(long, env = "JWT_ISSUER", global = true)]
    jwt_issuer: Option<String>,
    /// `aud` claim (the server's JWT_AUDIENCE).
    #[arg(long, env = "JWT_AUDIENCE", global = true)]
    jwt_audience: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List and inspect rooms (every node's, in cluster mode).
    Rooms {
        #[command(subcommand)]
        command: RoomsCommand,
    },
    /// Remove a participant from a room: it gets `kicked` and its socket closes.
    Kick {
        /// Room.
        room: String,
        /// Participant id.
        participant: String,
        /// A note the participant receives.
        #[arg(long)]
        message: Option<String>,
    },
    /// Close a room: everyone in it gets `kicked` (room-closed).
    Close {
        /// Room.
        room: String,
        /// A note the participants receive.
        #[arg(long)]
        message: Option<String>,
    },
    /// Stop forwarding a participant's tracks (all, or those named).
    Mute {
        /// Room.
        room: String,
        /// Participant id.
        participant: String,
        /// A track id (repeat for more); default: every track.
        #[arg(long = "track")]
        tracks: Vec<String>,
    },
    /// Forward muted tracks again.
    Unmute {
        /// Room.
        room: String,
        /// Participant id.
        participant: String,
        /// A track id (repeat for more); default: every track.
        #[arg(long = "track")]
        tracks: Vec<String>,
    },
    /// Send a chat message to a room as the system.
    Say {
        /// Room.
        room: String,
        /// Text.
        text: String,
        /// Sender name shown to the participants.
        #[arg(long)]
        username: Option<String>,
    },
    /// Tail the event stream of the node at --url.
    Events {
        /// Only this room's events.
        #[arg(long)]
        room: Option<String>,
        /// Node stats every this many seconds (0: none).
        #[arg(long)]
        stats: Option<u64>,
        /// Stop after this many events (the first, `subscribed`, included).
        #[arg(long)]
        count: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Mint a participant (or admin) token with the deployment's key.
    Create {
        /// Participant identity (`sub`).
        #[arg(long)]
        identity: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// A room the token may join (repeat for more); default: any room.
        #[arg(long = "room")]
        rooms: Vec<String>,
        /// Grant publishing. Without --can-publish and --can-subscribe, both are granted.
        #[arg(long)]
        can_publish: bool,
        /// Grant subscribing.
        #[arg(long)]
        can_subscribe: bool,
        /// Grant the admin API.
        #[arg(long)]
        admin: bool,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

#[derive(Debug, Subcommand)]
enum RoomsCommand {
    /// Every room, with its node and participants.
    List,
    /// One room: participants and their tracks.
    Show {
        /// Room.
        room: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn signer(keys: &Keys) -> Result<Signer, String> {
    let (iss, aud) = (keys.jwt_issuer.clone(), keys.jwt_audience.clone());
    let signer = match (&keys.jwt_secret, &keys.jwt_private_key_file) {
        (Some(_), Some(_)) => {
            return Err("set JWT_SECRET or JWT_PRIVATE_KEY_FILE, not both".into());
        }
        (Some(secret), None) => Signer::secret(secret.as_bytes(), iss, aud),
        (None, Some(path)) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("JWT_PRIVATE_KEY_FILE {}: {e}", path.display()))?;
            Signer::private_pem(&pem, keys.jwt_alg.as_deref(), iss, aud)
        }
        (None, None) => {
            return Err(
                "no key to sign with: set JWT_SECRET or JWT_PRIVATE_KEY_FILE (or give --token)"
                    .into(),
            )
        }
    };
    signer.map_err(|e| e.to_string())
}

async fn run(cli: Cli) -> Result<(), String> {
    if let Command::Token {
        command:
            TokenCommand::Create {
                identity,
                name,
                rooms,
                can_publish,
                can_subscribe,
                admin,
                ttl,
            },
    } = &cli.command
    {
        let both = !can_publish && !can_subscribe;
        let request = TokenRequest {
            sub: identity.clone(),
            name: name.clone(),
            rooms: (!rooms.is_empty()).then(|| rooms.clone()),
            can_publish: *can_publish || both,
            can_subscribe: *can_subscribe || both,
            admin: *admin,
            ttl_secs: *ttl,
        };
        let token = signer(&cli.keys)?
            .mint(&request)
            .map_err(|e| e.to_string())?;
        if cli.json {
            println!(
                "{}",
                json!({ "token": token, "identity": identity, "expiresIn": ttl })
            );
        } else {
            println!("{token}");
        }
        return Ok(());
    }
    let server = Server::parse(&cli.url)?;
    let token = match &cli.token {
        Some(t) => t.clone(),
        None => signer(&cli.keys)?
            .mint(&TokenRequest {
                sub: "sfuctl".into(),
                name: None,
                rooms: None,
                can_publish: false,
                can_subscribe: false,
                admin: true,
                ttl_secs: 60,
            })
            .map_err(|e| e.to_string())?,
    };
    let api = |method: Method, path: String, body: Option<Value>| {
        let server = server.clone();
        let token = token.clone();
        async move {
            let (status, v) = server
                .request(method, &format!("/admin/v1/{path}"), &token, body.as_ref())
                .await?;
            if status >= 400 {
                let code = v["code"].as_str().unwrap_or("error");
                let message = v["message"]
                    .as_str()
                    .map_or_else(|| v.to_string(), str::to_owned);
                return Err(format!("{code} (HTTP {status}): {message}"));
            }
            Ok::<Value, String>(v)
        }
    };
    let json_out = cli.json;
    let done = |v: Value, human: String| {
        if json_out {
            println!("{v}");
        } else {
            println!("{human}");
        }
        Ok(())
    };
    match cli.command {
        Command::Token { .. } => Ok(()),
        Command::Rooms {
            command: RoomsCommand::List,
        } => {
            let v = api(Method::GET, "rooms".into(), None).await?;
            let human = rooms_table(&v);
            done(v, human)
        }
        Command::Rooms {
            command: RoomsCommand::Show { room },
        } => {
            let v = api(Method::GET, format!("rooms/{}", segment(&room)), None).await?;
            let human = room_detail(&v);
            done(v, human)
        }
        Command::Kick {
            room,
            participant,
            message,
        } => {
            let path = format!(
                "rooms/{}/participants/{}/kick",
                segment(&room),
                segment(&participant)
            );
            let v = api(Method::POST, path, Some(json!({ "message": message }))).await?;
            done(v, format!("removed {participant} from {room}"))
        }
        Command::Close { room, message } => {
            let path = format!("rooms/{}/close", segment(&room));
            let v = api(Method::POST, path, Some(json!({ "message": message }))).await?;
            let n = v["participants"].as_u64().unwrap_or(0);
            done(v, format!("closed {room} ({n} participants removed)"))
        }
        Command::Mute {
            room,
            participant,
            tracks,
        } => mute(&api, &done, "mute", room, participant, tracks).await,
        Command::Unmute {
            room,
            participant,
            tracks,
        } => mute(&api, &done, "unmute", room, participant, tracks).await,
        Command::Say {
            room,
            text,
            username,
        } => {
            let path = format!("rooms/{}/messages", segment(&room));
            let mut body = json!({ "text": text });
            if let Some(u) = username {
                body["username"] = json!(u);
            }
            let v = api(Method::POST, path, Some(body)).await?;
            done(v, format!("sent to {room}"))
        }
        Command::Events { room, stats, count } => {
            let mut query = Vec::new();
            if let Some(r) = room {
                query.push(("room", r));
            }
            if let Some(s) = stats {
                query.push(("stats", s.to_string()));
            }
            let mut seen = 0usize;
            server
                .events(&query, &token, |text| {
                    if json_out {
                        println!("{text}");
                    } else {
                        println!("{}", event_line(text));
                    }
                    seen += 1;
                    count.is_none_or(|c| seen < c)
                })
                .await
        }
    }
}

async fn mute<A, F>(
    api: &A,
    done: &impl Fn(Value, String) -> Result<(), String>,
    verb: &str,
    room: String,
    participant: String,
    tracks: Vec<String>,
) -> Result<(), String>
where
    A: Fn(Method, String, Option<Value>) -> F,
    F: std::future::Future<Output = Result<Value, String>>,
{
    let path = format!(
        "rooms/{}/participants/{}/{verb}",
        segment(&room),
        segment(&participant)
    );
    let body = if tracks.is_empty() {
        json!({})
    } else {
        json!({ "trackIds": tracks })
    };
    let v = api(Method::POST, path, Some(body)).await?;
    let muted: Vec<&str> = v["tracks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|t| t["muted"] == json!(true))
                .filter_map(|t| t["trackId"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let human = format!(
        "{participant} in {room}: muted tracks now [{}]",
        muted.join(", ")
    );
    done(v, human)
}

fn rooms_table(v: &Value) -> String {
    let mut out = format!(
        "{:<32} {:<20} {:>12} {:>10} {:>6}",
        "ROOM", "NODE", "PARTICIPANTS", "PUBLISHERS", "TRACKS"
    );
    for r in v["rooms"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n{:<32} {:<20} {:>12} {:>10} {:>6}",
            r["name"].as_str().unwrap_or("?"),
            r["node"].as_str().unwrap_or("?"),
            r["participants"].as_array().map_or(0, Vec::len),
            r["publishers"].as_u64().unwrap_or(0),
            r["tracks"].as_u64().unwrap_or(0),
        ));
    }
    if let Some(nodes) = v["unreachableNodes"].as_array() {
        out.push_str(&format!(
            "\n(no answer from nodes: {})",
            nodes
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

fn room_detail(v: &Value) -> String {
    let mut out = format!(
        "room {} on node {}",
        v["name"].as_str().unwrap_or("?"),
        v["node"].as_str().unwrap_or("?")
    );
    for p in v["participants"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  {} ({})",
            p["participantId"].as_str().unwrap_or("?"),
            p["username"].as_str().unwrap_or("?")
        ));
        for t in p["tracks"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "\n    {} {}{}",
                t["kind"].as_str().unwrap_or("?"),
                t["trackId"].as_str().unwrap_or("?"),
                if t["muted"] == json!(true) {
                    " (muted)"
                } else {
                    ""
                }
            ));
        }
    }
    out
}

fn event_line(text: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return text.to_owned();
    };
    let mut line = format!(
        "{} {}",
        v["ts"].as_u64().unwrap_or(0),
        v["type"].as_str().unwrap_or("?")
    );
    for key in ["node", "room", "participantId", "username"] {
        if let Some(s) = v[key].as_str() {
            line.push_str(&format!(" {key}={s}"));
        }
    }
    if let Some(tracks) = v["tracks"].as_array() {
        line.push_str(&format!(" tracks={}", tracks.len()));
    }
    if v["type"] == "node-stats" {
        for key in ["rooms", "participants", "tracks", "connections", "monitors"] {
            line.push_str(&format!(" {key}={}", v[key]));
        }
    }
    line
}
