//! The HTTP edge: WebSocket upgrade at `/ws` and `/`, the web app at `/`,
//! `/health`, and `/dev/token` in development mode only.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::auth::TokenRequest;
use crate::AppState;

/// The web app, embedded so that the binary alone serves it (no build step,
/// no files next to the binary): path, content type, body.
const WEB_ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "sfu-client.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/sfu-client.js"),
    ),
    (
        "sfu-core.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/sfu-core.js"),
    ),
    (
        "client/candidates.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/client/candidates.js"),
    ),
    (
        "client/publish.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/client/publish.js"),
    ),
    (
        "client/room.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/client/room.js"),
    ),
    (
        "client/session.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/client/session.js"),
    ),
    (
        "client/shared.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/client/shared.js"),
    ),
    (
        "client/subscribe.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/client/subscribe.js"),
    ),
    (
        "client/tracks.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/client/tracks.js"),
    ),
    (
        "client/transport.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/client/transport.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../web/style.css"),
    ),
];

fn web_asset(name: &str) -> Option<warp::reply::Response> {
    let (_, content_type, body) = WEB_ASSETS.iter().find(|(n, _, _)| *n == name)?;
    let mut response = warp::reply::Response::new((*body).into());
    let headers = response.headers_mut();
    headers.insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static(content_type),
    );
    // The assets change with the binary; browsers revalidate every time.
    headers.insert(
        warp::http::header::CACHE_CONTROL,
        warp::http::HeaderValue::from_static("no-cache"),
    );
    headers.insert(
        warp::http::header::X_CONTENT_TYPE_OPTIONS,
        warp::http::HeaderValue::from_static("nosniff"),
    );
    Some(response)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    rooms: usize,
    participants: usize,
    publishers: usize,
    version: &'static str,
    #[serde(rename = "nodeId")]
    node_id: String,
    cluster: crate::cluster::ClusterStatus,
    /// Admission control: tracks forwarded to subscribers now, and the limit.
    #[serde(rename = "forwardedTracks")]
    forwarded_tracks: usize,
    /// `MAX_FORWARDED_TRACKS`; 0 = no limit.
    #[serde(rename = "forwardLimit")]
    forward_limit: usize,
    /// The media port range (`RTC_MIN_PORT..RTC_MAX_PORT`): ports in use
    /// and left; absent without a range (ephemeral ports).
    #[serde(rename = "mediaPorts", skip_serializing_if = "Option::is_none")]
    media_ports: Option<crate::media::ports::PortUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<RoomHealth>,
}

/// `/health?room=NAME`: where that room lives.
#[derive(Serialize)]
struct RoomHealth {
    name: String,
    /// Open on this node.
    open: bool,
    /// The node that holds it (this one when open here), if any.
    owner: Option<String>,
}

#[derive(Serialize)]
struct DevToken {
    token: String,
    #[serde(rename = "participantId")]
    participant_id: String,
    #[serde(rename = "expiresIn")]
    expires_in: u64,
}

/// Every route of the server.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
    let with_state = {
        let state = Arc::clone(&state);
        warp::any().map(move || Arc::clone(&state))
    };
    let query = warp::query::<HashMap<String, String>>()
        .or(warp::any().map(HashMap::new))
        .unify();

    let upgrade = warp::ws()
        .and(warp::header::optional::<String>("authorization"))
        .and(query)
        .and(with_state.clone())
        .and_then(upgrade);
    let ws_routes = warp::path("ws")
        .and(warp::path::end())
        .and(upgrade.clone())
        .or(warp::path::end().and(upgrade));

    let index = warp::get()
        .and(warp::path::end())
        .and_then(|| async { web_asset("index.html").ok_or_else(warp::reject::not_found) });
    let assets = warp::get()
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and_then(
            |name: String| async move { web_asset(&name).ok_or_else(warp::reject::not_found) },
        );
    // The modules of the client library (web/client/) are one level down.
    let client_assets = warp::get()
        .and(warp::path("client"))
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and_then(|name: String| async move {
            web_asset(&format!("client/{name}")).ok_or_else(warp::reject::not_found)
        });

    let health = warp::get()
        .and(warp::path("health"))
        .and(warp::path::end())
        .and(query)
        .and(with_state.clone())
        .then(
            |query: HashMap<String, String>, state: Arc<AppState>| async move {
                let c = state.rooms.counts();
                let status = if *state.draining.borrow() {
                    "draining"
                } else {
                    "ok"
                };
                let room = match query.get("room") {
                    Some(name) => {
                        let open = state.rooms.is_open(name);
                        let owner = match state.cluster.room_owner(name).await {
                            Ok(Some(owner)) => Some(owner),
                            _ => open.then(|| state.config.node_id.clone()),
                        };
                        Some(RoomHealth {
                            name: name.clone(),
                            open,
                            owner,
                        })
                    }
                    None => None,
                };
                warp::reply::json(&Health {
                    status,
                    rooms: c.rooms,
                    participants: c.participants,
                    publishers: c.publishers,
                    version: env!("CARGO_PKG_VERSION"),
                    node_id: state.config.node_id.clone(),
                    cluster: state.cluster.status().await,
                    forwarded_tracks: c.forwarded_tracks,
                    forward_limit: c.forward_limit,
                    media_ports: state.media_ports.usage(),
                    room,
                })
            },
        );

    // On the main port unless METRICS_ADDR puts it elsewhere.
    let on_main_port = state.config.metrics_addr.is_none();
    let metrics = warp::get()
        .and(warp::path("metrics"))
        .and(warp::path::end())
        .and(with_state.clone())
        .and_then(move |state: Arc<AppState>| async move {
            if on_main_port {
                Ok(metrics_reply(&state))
            } else {
                Err(warp::reject::not_found())
            }
        });

    let dev_token = warp::get()
        .and(warp::path!("dev" / "token"))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state)
        .and_then(dev_token);

    ws_routes
        .or(index)
        .or(health)
        .or(metrics)
        .or(dev_token)
        .or(assets)
        .or(client_assets)
        .recover(handle_rejection)
}

/// The routes of `METRICS_ADDR`: `GET /metrics` only.
pub fn metrics_routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::get()
        .and(warp::path("metrics"))
        .and(warp::path::end())
        .map(move || metrics_reply(&state))
        .recover(handle_rejection)
}

/// `GET /metrics`: the Prometheus text exposition.
fn metrics_reply(state: &AppState) -> warp::reply::Response {
    let c = state.rooms.counts();
    let limit = state.config.limits.max_connections;
    let body = crate::metrics::render(crate::metrics::Snapshot {
        rooms: c.rooms,
        participants: c.participants,
        publishers: c.publishers,
        published_tracks: c.tracks,
        forwarded_tracks: c.forwarded_tracks,
        forward_limit: c.forward_limit,
        connections: limit.saturating_sub(state.connections.available_permits()),
        connection_limit: limit,
        media_ports: state.media_ports.usage().map(|u| (u.in_use, u.left)),
    });
    let mut response = warp::reply::Response::new(body.into());
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn upgrade(
    ws: warp::ws::Ws,
    authorization: Option<String>,
    query: HashMap<String, String>,
    state: Arc<AppState>,
) -> Result<warp::reply::Response, Rejection> {
    let Ok(permit) = Arc::clone(&state.connections).try_acquire_owned() else {
        crate::metrics::connection_refused("limit");
        return Ok(warp::reply::with_status(
            "connection limit reached",
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response());
    };
    if *state.draining.borrow() {
        crate::metrics::connection_refused("draining");
        return Ok(warp::reply::with_status(
            "server is shutting down",
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response());
    }
    // First found wins: header, then query parameter, then the auth message.
    let token = authorization
        .as_deref()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned())
        .or_else(|| query.get("token").cloned());
    Ok(ws
        // A little above 64 KiB so that oversized frames are seen by the
        // session, which closes with 1009 as the protocol says.
        .max_message_size(signaling::MAX_FRAME_BYTES + 1024)
        .max_frame_size(signaling::MAX_FRAME_BYTES + 1024)
        .on_upgrade(move |socket| {
            crate::metrics::connection_accepted();
            crate::session::run(socket, state, crate::session::Auth::Token(token), permit)
        })
        .into_response())
}

async fn dev_token(
    query: HashMap<String, String>,
    state: Arc<AppState>,
) -> Result<warp::reply::Response, Rejection> {
    if !state.config.is_dev() {
        return Err(warp::reject::not_found());
    }
    if let Some(room) = query.get("room") {
        if let Err(e) = signaling::validate_room_name(room) {
            return Ok(warp::reply::with_status(
                warp::reply::json(&serde_json::json!({ "error": e })),
                StatusCode::BAD_REQUEST,
            )
            .into_response());
        }
    }
    let sub = query
        .get("user")
        .filter(|u| !u.is_empty() && u.len() <= 128)
        .cloned()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    let request = TokenRequest {
        sub: sub.clone(),
        name: query.get("name").cloned(),
        rooms: query.get("room").map(|r| vec![r.clone()]),
        can_publish: true,
        can_subscribe: true,
        admin: false,
        ttl_secs: 24 * 3600,
    };
    match state.verifier.issue_token(&request) {
        Ok(token) => Ok(warp::reply::json(&DevToken {
            token,
            participant_id: sub,
            expires_in: request.ttl_secs,
        })
        .into_response()),
        Err(e) => Ok(
            warp::reply::with_status(e.to_string(), StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
        ),
    }
}

async fn handle_rejection(err: Rejection) -> Result<warp::reply::Response, Infallible> {
    let (code, message) = if err.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".to_owned())
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_owned(),
        )
    } else {
        (StatusCode::BAD_REQUEST, format!("{err:?}"))
    };
    Ok(warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": message })),
        code,
    )
    .into_response())
}
