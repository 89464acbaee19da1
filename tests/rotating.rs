//! A token endpoint that rotates refresh tokens, for the tests of fleets
//! sharing them through Redis (`redis_store`, `failovers`).

use std::convert::Infallible;
use std::sync::Arc;

/// A token endpoint as the tower sources take it.
pub type Endpoint = tower::util::BoxCloneSyncService<http::Request<Vec<u8>>, http::Response<String>, Infallible>;

/// A token endpoint that rotates refresh tokens: each refresh grant spends
/// the presented refresh token and issues a new one; a spent one presented
/// again is counted as reused and refused (`invalid_grant`), as providers
/// with reuse detection do.
#[derive(Clone, Default)]
pub struct Rotating {
    pub state: Arc<std::sync::Mutex<RotatingState>>,
}

#[derive(Default)]
pub struct RotatingState {
    pub issued: usize,
    pub live_refresh: Option<String>,
    pub spent: Vec<String>,
    pub reused: usize,
    pub refreshes: usize,
}

impl Rotating {
    pub fn endpoint(&self) -> Endpoint {
        let state = Arc::clone(&self.state);
        tower::util::BoxCloneSyncService::new(tower::service_fn(move |request: http::Request<Vec<u8>>| {
            let params: Vec<(String, String)> = form_urlencoded::parse(request.body()).into_owned().collect();
            let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let mut state = state.lock().unwrap();
            let body = if param("grant_type").as_deref() == Some("refresh_token") {
                let presented = param("refresh_token").unwrap_or_default();
                if state.live_refresh.as_deref() == Some(presented.as_str()) {
                    state.refreshes += 1;
                    state.spent.push(presented);
                    None
                } else {
                    if state.spent.contains(&presented) {
                        state.reused += 1;
                    }
                    Some(r#"{"error":"invalid_grant"}"#.to_owned())
                }
            } else {
                None
            };
            let response = match body {
                Some(error) => http::Response::builder().status(400).body(error).unwrap(),
                None => {
                    state.issued += 1;
                    let n = state.issued;
                    state.live_refresh = Some(format!("rt-{n}"));
                    http::Response::new(format!(
                        r#"{{"access_token":"tok-{n}","expires_in":2,"refresh_token":"rt-{n}"}}"#
                    ))
                }
            };
            async move { Ok::<_, Infallible>(response) }
        }))
    }
}
