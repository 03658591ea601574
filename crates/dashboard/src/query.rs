//! The query-string extractor of the API: axum's `Query` answers a malformed value (`limit=-1`, `id=abc`) with
//! a plain-text 400; this one answers with the API's JSON error naming the parameter.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::api::ApiError;

/// Deserialises the query string into `T`, or rejects with `400 {"error": "query parameter `limit`: ..."}`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parse(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// The query string as `T`; the error names the parameter (serde_path_to_error's path) and the problem.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let reason = e.into_inner().to_string();
        let reason = match reason.as_str() {
            // What Rust's integer parser says about `-1`, `abc` or `1e3`.
            "invalid digit found in string" | "cannot parse integer from empty string" => {
                format!("{reason} (expected a whole number >= 0)")
            }
            _ => reason,
        };
        if path == "." {
            ApiError::bad_request(format!("query string: {reason}"))
        } else {
            ApiError::bad_request(format!("query parameter `{path}`: {reason}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Q {
        limit: Option<usize>,
        run: Option<String>,
    }

    #[test]
    fn errors_name_the_parameter() {
        assert_eq!(parse::<Q>("limit=5&run=a").unwrap(), Q { limit: Some(5), run: Some("a".into()) });
        assert_eq!(parse::<Q>("").unwrap(), Q { limit: None, run: None });
        for q in ["limit=-1", "limit=abc", "run=a&limit=1.5"] {
            let e = parse::<Q>(q).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(e.message, "query parameter `limit`: invalid digit found in string (expected a whole number >= 0)", "{q}");
        }
    }
}
