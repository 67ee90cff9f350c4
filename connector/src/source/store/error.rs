//! What went wrong with an object store, in the store's terms.
//!
//! `object_store`'s errors carry request URLs and response bodies in their text, so they are
//! not kept as a cause: an error is classified here into a [`StoreProblem`] from its variant,
//! the response's error code (the only part of a body that `http.rs` lets through) and the
//! transport failure, and only that is shown.

use std::error::Error as StdError;

use object_store::client::{HttpError, HttpErrorKind};

use super::http::{code_in, is_credential_host, CredentialRefused, TransportError};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreProblem {
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("no such object")]
    NoSuchObject,
    #[error("access denied: {0}")]
    AccessDenied(&'static str),
    #[error("cannot reach the store at {host}{}", if *.timed_out { " (timed out)" } else { "" })]
    Unreachable { host: String, timed_out: bool },
    #[error("no credentials: {0}")]
    NoCredentials(String),
    #[error("the store answered {status}{}", .code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Answered { status: u16, code: Option<String> },
    #[error("{0}")]
    Other(String),
}

impl StoreProblem {
    /// What a person can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            StoreProblem::NoSuchBucket => "check the bucket's name in the URL, and `store: region` or `endpoint`",
            StoreProblem::NoSuchObject => "check the path in the URL: `ebb validate` lists what it matches",
            StoreProblem::AccessDenied(_) | StoreProblem::NoCredentials(_) => {
                "credentials come from the environment: AWS_* for s3://, GOOGLE_APPLICATION_CREDENTIALS for gs://, \
                 AZURE_* for az://; the identity needs to list the bucket and read its objects"
            }
            StoreProblem::Unreachable { .. } => "check `store: endpoint` (and `allow_http`), the network and any proxy",
            StoreProblem::Answered { .. } | StoreProblem::Other(_) => "check the URL and the store's settings; run again",
        }
    }

    /// Classifies an `object_store` error.
    pub fn of(error: &object_store::Error) -> StoreProblem {
        if let Some(problem) = transport(error) {
            return problem;
        }
        let code = chain(error).find_map(|e| code_in(&e.to_string()).map(str::to_string));
        if let Some(problem) = code.as_deref().and_then(by_code) {
            return problem;
        }
        match error {
            object_store::Error::NotFound { .. } => StoreProblem::NoSuchObject,
            object_store::Error::PermissionDenied { .. } => StoreProblem::AccessDenied("the store refused this identity"),
            object_store::Error::Unauthenticated { .. } => StoreProblem::AccessDenied("the store did not accept the credentials"),
            _ => match status_in(error) {
                Some(status) => StoreProblem::Answered { status, code },
                None => StoreProblem::Other(first_line(error)),
            },
        }
    }
}

fn chain<'a>(error: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next = Some(error);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.source();
        Some(current)
    })
}

/// A request that got no response: the store is unreachable, or, when the host gives out
/// credentials, there were none in the environment and the chain could not get any. A
/// credential service that answered with a refusal is the latter too.
fn transport(error: &object_store::Error) -> Option<StoreProblem> {
    let http = chain(error).find_map(|e| e.downcast_ref::<HttpError>())?;
    if let Some(refused) = chain(http).find_map(|e| e.downcast_ref::<CredentialRefused>()) {
        return Some(StoreProblem::NoCredentials(format!("none in the environment, and {refused}")));
    }
    let host = chain(http)
        .find_map(|e| e.downcast_ref::<TransportError>())
        .map(|t| t.host.clone())?;
    if is_credential_host(&host) {
        return Some(StoreProblem::NoCredentials(format!(
            "none in the environment, and no credential service at {host} to ask"
        )));
    }
    let timed_out = http.kind() == HttpErrorKind::Timeout;
    matches!(
        http.kind(),
        HttpErrorKind::Connect | HttpErrorKind::Timeout | HttpErrorKind::Interrupted
    )
    .then_some(StoreProblem::Unreachable { host, timed_out })
}

fn by_code(code: &str) -> Option<StoreProblem> {
    Some(match code {
        "NoSuchBucket" | "ContainerNotFound" => StoreProblem::NoSuchBucket,
        "NoSuchKey" | "BlobNotFound" | "notFound" => StoreProblem::NoSuchObject,
        "InvalidAccessKeyId" | "NotSignedUp" => StoreProblem::AccessDenied("the store does not know this access key id"),
        "SignatureDoesNotMatch" => StoreProblem::AccessDenied("the secret key does not match the access key id"),
        "AuthenticationFailed" => StoreProblem::AccessDenied("the store did not accept the credentials"),
        "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired" => StoreProblem::AccessDenied("the session token is invalid or expired"),
        "AccessDenied" | "AllAccessDisabled" | "AuthorizationFailure" | "AuthorizationPermissionMismatch" | "forbidden" => {
            StoreProblem::AccessDenied("this identity may not read the bucket")
        }
        _ => return None,
    })
}

/// The HTTP status of a response the store gave, from `object_store`'s message ("status code:
/// 503 Service Unavailable"): the type that holds it is private to that crate.
fn status_in(error: &object_store::Error) -> Option<u16> {
    let text = error.to_string();
    let (_, rest) = text.split_once("status code: ")?;
    rest.get(..3)?.parse().ok()
}

/// The error's own first line, for an error that is not about a request (a builder's).
fn first_line(error: &object_store::Error) -> String {
    let text = error.to_string();
    let line = text.lines().next().unwrap_or_default();
    crate::quote::shorten(line, crate::quote::MAX_QUOTED_CHARS).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_say_what_the_store_meant() {
        assert_eq!(by_code("NoSuchBucket"), Some(StoreProblem::NoSuchBucket));
        assert!(matches!(by_code("SignatureDoesNotMatch"), Some(StoreProblem::AccessDenied(m)) if m.contains("secret")));
        assert!(matches!(by_code("InvalidAccessKeyId"), Some(StoreProblem::AccessDenied(m)) if m.contains("access key id")));
        assert_eq!(by_code("SlowDown"), None);
    }

    #[test]
    fn a_credential_service_that_refuses_or_is_absent_means_no_credentials() {
        let refused = HttpError::new(
            HttpErrorKind::Unknown,
            CredentialRefused {
                host: "169.254.169.254:80".into(),
                status: 403,
            },
        );
        let error = object_store::Error::Generic {
            store: "S3",
            source: Box::new(refused),
        };
        assert_eq!(
            StoreProblem::of(&error).to_string(),
            "no credentials: none in the environment, and the credential service at 169.254.169.254:80 answered 403"
        );
        assert!(is_credential_host("169.254.169.254:80") && is_credential_host("sts.eu-west-1.amazonaws.com:443"));
        assert!(!is_credential_host("s3.eu-west-1.amazonaws.com:443") && !is_credential_host("127.0.0.1:9000"));
    }

    #[test]
    fn a_variant_without_a_code_still_says_what_it_is() {
        let denied = object_store::Error::PermissionDenied {
            path: "users/a.parquet".into(),
            source: "403".into(),
        };
        assert!(matches!(StoreProblem::of(&denied), StoreProblem::AccessDenied(_)));
        let missing = object_store::Error::NotFound {
            path: "users/a.parquet".into(),
            source: "404".into(),
        };
        assert_eq!(StoreProblem::of(&missing), StoreProblem::NoSuchObject);
    }
}
