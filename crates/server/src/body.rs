//! Reading a request body: at most [`MAX_BODY`] bytes, within a timeout. A client trickling its body must
//! not hold a connection forever (its headers are bounded by the header-read timeout), and an oversized
//! body is read to its end (up to [`DRAIN_CAP`]) before the 413 goes out: a client still sending when the
//! server closes gets a broken pipe instead of the answer (what nginx's "lingering close" avoids).

use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use futures_util::StreamExt;
use std::time::Duration;

/// Bodies larger than this are refused with 413 (axum's default limit, made explicit).
pub const MAX_BODY: usize = 2 << 20;
/// How much of an oversized body is read and dropped before answering.
pub const DRAIN_CAP: usize = 64 << 20;

pub async fn read(body: Body, timeout: Duration) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, read_limited(body)).await {
        Ok(r) => r,
        Err(_) => Err(status(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {:.1} s", timeout.as_secs_f64()),
        )),
    }
}

async fn read_limited(body: Body) -> Result<Bytes, ApiError> {
    let mut chunks = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}"), None))?;
        seen = seen.saturating_add(chunk.len());
        if seen <= MAX_BODY {
            kept.extend_from_slice(&chunk);
        } else if seen > DRAIN_CAP {
            break;
        }
    }
    if seen > MAX_BODY {
        return Err(status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} MiB", MAX_BODY >> 20),
        ));
    }
    Ok(Bytes::from(kept))
}

fn status(code: StatusCode, message: String) -> ApiError {
    let mut e = ApiError::bad_request(message, None);
    e.status = code;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(parts: Vec<Vec<u8>>) -> Body {
        Body::from_stream(futures_util::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>)))
    }

    #[tokio::test]
    async fn keeps_bodies_up_to_the_limit_and_refuses_larger_ones_after_reading_them() {
        let ok = read(body_of(vec![b"{\"a\":".to_vec(), b"1}".to_vec()]), Duration::from_secs(1)).await.unwrap();
        assert_eq!(&ok[..], b"{\"a\":1}");
        let exact = read(body_of(vec![vec![b'x'; MAX_BODY]]), Duration::from_secs(1)).await.unwrap();
        assert_eq!(exact.len(), MAX_BODY);
        let e = read(body_of(vec![vec![b'x'; MAX_BODY], vec![b'x'; 1]]), Duration::from_secs(1)).await.unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "the request body is larger than 2 MiB"));
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_a_408() {
        let stalled = Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        let e = read(stalled, Duration::from_millis(50)).await.unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_TIMEOUT);
    }
}
