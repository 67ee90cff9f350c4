//! Customer profiles in the style of EnjoyHQ.
//!
//! `POST {url}/users/import` with `{"users":[…]}`, 1 to 100 users and at most 1 MB, each
//! identified by its email, authenticated by `Authorization: Token <token>`. A property set
//! replaces the profile's previous one. A 403 that lists messages per user refused those users
//! and applied nothing, so the others are sent again; a 403 without them is an authorisation
//! failure.

pub mod config;
mod wire;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

pub use config::{ProfilesConfig, RawCompany, RawProfiles, COMPANY_PREFIX, MAPPING_KEYS, MAX_BYTES, MAX_RECORDS};

use super::{http, truncate, Attempt, Capabilities, Destination, DestinationError, DestinationSettings, PreparedRequest, RUN_HEADER};
use crate::destination::reply::{self, RetryAction};
use crate::record::Change;

pub struct Profiles {
    config: ProfilesConfig,
    client: reqwest::Client,
    url: String,
}

impl Profiles {
    pub fn new(config: ProfilesConfig) -> Result<Self, DestinationError> {
        let client = http::client(&config.delivery)?;
        let url = format!("{}/users/import", config.url.as_str().trim_end_matches('/'));
        Ok(Self { config, client, url })
    }

    fn request(&self, request: &PreparedRequest) -> reqwest::RequestBuilder {
        let mut post = match request.method {
            "DELETE" => self.client.delete(&request.url),
            _ => self.client.post(&request.url).header(CONTENT_TYPE, "application/json"),
        };
        if let Some(token) = http::secret_header(&format!("Token {}", self.config.token.expose())) {
            post = post.header(AUTHORIZATION, token);
        }
        if let Some(run) = &request.run {
            post = post.header(RUN_HEADER, run);
        }
        post.body(request.body.clone())
    }
}

impl Profiles {
    /// `{url}/users/{email}`, the email percent-encoded as one path segment.
    fn delete_url(&self, email: &str) -> String {
        let mut url = self.config.url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("users").push(email);
        }
        url.to_string()
    }
}

/// A 403's per-user messages, in request order; `None` if it has none.
fn refused_users(body: &str) -> Option<Vec<(usize, String)>> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Vec<String>>,
    }
    let errors = serde_json::from_str::<Errors>(body).ok()?.errors;
    let refused: Vec<(usize, String)> = errors
        .into_iter()
        .enumerate()
        .filter(|(_, messages)| !messages.is_empty())
        .map(|(i, messages)| (i, messages.join("; ")))
        .collect();
    (!refused.is_empty()).then_some(refused)
}

#[async_trait::async_trait]
impl Destination for Profiles {
    fn describe(&self) -> String {
        "profiles".to_string()
    }

    fn capabilities(&self) -> Capabilities {
        self.config.capabilities()
    }

    fn prepare(&self, changes: &[&Change]) -> Result<PreparedRequest, DestinationError> {
        if let [Change::Delete { id }] = changes {
            return Ok(PreparedRequest {
                method: "DELETE",
                url: self.delete_url(id),
                body: Vec::new(),
                records: 1,
                run: None,
            });
        }
        // Deletes go one a request (the capabilities say so); with anything else, it is a bug.
        let records = super::upserts_only(changes, self.describe(), "delete more than one profile in a request")?;
        let body = serde_json::to_vec(&wire::Body { records: &records }).map_err(DestinationError::Encode)?;
        Ok(PreparedRequest {
            method: "POST",
            url: self.url.clone(),
            body,
            records: changes.len(),
            run: None,
        })
    }

    async fn send(&self, request: &PreparedRequest) -> Attempt {
        http::attempt(self.request(request), self.config.delivery.timeout, &self.config.url).await
    }

    fn classify(&self, request: &PreparedRequest, attempt: &Attempt) -> RetryAction {
        match attempt {
            // Already gone is what a delete wanted.
            Attempt::Response { status: 404, .. } if request.method == "DELETE" => RetryAction::Delivered,
            Attempt::Response { status: 403, body, .. } => match refused_users(body) {
                Some(refused) => RetryAction::RefusedSome { refused },
                None => RetryAction::Fatal,
            },
            other => reply::classify(other),
        }
    }

    fn explain(&self, attempt: &Attempt) -> String {
        match attempt {
            Attempt::Response { status: 401, .. } => {
                "HTTP 401: the token was refused — check the mapping's token (sent as `Authorization: Token …`)".to_string()
            }
            Attempt::Response { status: 403, body, .. } => match refused_users(body) {
                Some(refused) => format!("HTTP 403: {} users refused", refused.len()),
                None => format!("HTTP 403: this token may not import users: {}", truncate(body, 300)),
            },
            Attempt::Response { status, body, .. } => format!("HTTP {status}: {}", truncate(body, 300)),
            Attempt::Transport(e) => e.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::secret::SecretString;
    use crate::config::DeliveryConfig;

    fn profiles(token: &str) -> Profiles {
        Profiles::new(ProfilesConfig {
            token: SecretString::new(token),
            url: url::Url::parse("https://api.enjoyhq.com/v1").expect("url"),
            delivery: DeliveryConfig {
                batch_size: 100,
                requests_per_minute: 60,
                concurrency: 1,
                retry_budget: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
            },
        })
        .expect("client")
    }

    fn reply(status: u16, body: &str) -> Attempt {
        Attempt::Response {
            status,
            retry_after: None,
            body: body.into(),
        }
    }

    #[test]
    fn the_token_is_sent_as_a_sensitive_authorization_header() {
        let profiles = profiles("tok-0123456789");
        let prepared = profiles.prepare(&[]).expect("prepared");
        assert_eq!(prepared.url, "https://api.enjoyhq.com/v1/users/import");
        let request = profiles.request(&prepared).build().expect("request");
        let header = request.headers().get(AUTHORIZATION).expect("the token is sent");
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().expect("text"), "Token tok-0123456789");
        let shown = format!("{request:?} {:?}", request.headers());
        assert!(!shown.contains("tok-0123"), "{shown}");
    }

    #[test]
    fn a_403_with_messages_per_user_refuses_those_users_and_applies_nothing() {
        let profiles = profiles("t");
        let post = profiles.prepare(&[]).expect("prepared");
        let action = profiles.classify(&post, &reply(403, r#"{"errors":[[],["email is invalid","name is missing"],[]]}"#));
        assert_eq!(
            action,
            RetryAction::RefusedSome {
                refused: vec![(1, "email is invalid; name is missing".into())]
            }
        );
        assert_eq!(profiles.classify(&post, &reply(403, r#"{"errors":[[],[]]}"#)), RetryAction::Fatal);
        assert_eq!(profiles.classify(&post, &reply(403, "forbidden")), RetryAction::Fatal);
        assert!(profiles.explain(&reply(403, "forbidden")).contains("may not import users"));
        assert_eq!(profiles.classify(&post, &reply(401, "")), RetryAction::Fatal);
        assert!(profiles.explain(&reply(401, "")).contains("token was refused"));
        assert_eq!(profiles.classify(&post, &reply(200, r#"{"imported":3}"#)), RetryAction::Delivered);
        assert_eq!(
            profiles.classify(&post, &reply(404, "")),
            RetryAction::Fatal,
            "a 404 to an import is a wrong URL"
        );
    }

    #[test]
    fn a_delete_is_one_request_to_the_percent_encoded_email_and_a_404_means_already_gone() {
        let profiles = profiles("t");
        let delete = Change::Delete {
            id: "ada+x y@example.com".into(),
        };
        let request = profiles.prepare(&[&delete]).expect("prepared");
        assert_eq!(request.method, "DELETE");
        assert_eq!(request.url, "https://api.enjoyhq.com/v1/users/ada+x%20y@example.com");
        assert!(request.body.is_empty());
        assert_eq!(profiles.classify(&request, &reply(204, "")), RetryAction::Delivered);
        assert_eq!(profiles.classify(&request, &reply(404, "")), RetryAction::Delivered);
        assert_eq!(profiles.classify(&request, &reply(503, "")), RetryAction::Retry { after: None });
        let two = profiles.prepare(&[&delete, &delete]).expect_err("one a request");
        assert!(
            two.to_string().contains("cannot delete more than one profile in a request"),
            "{two}"
        );
        let built = profiles.request(&request).build().expect("request");
        assert_eq!(built.method(), reqwest::Method::DELETE);
    }
}
