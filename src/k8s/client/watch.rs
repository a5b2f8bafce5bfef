//! Watch responses: newline-delimited JSON events read one at a time, each capped at
//! [`MAX_BODY`]. [`super::ApiClient::watch`] opens the stream.

use super::error::classify;
use super::{ApiError, MAX_BODY};

/// One event of a watch stream (`{"type": ..., "object": ...}`).
#[derive(Debug, serde::Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub object: serde_json::Value,
}

/// A watch response read as newline-delimited JSON events.
pub struct WatchStream {
    url: String,
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl WatchStream {
    /// Reads the events of `resp`, a 2xx answer to a watch of `url`.
    pub(super) fn new(url: String, resp: reqwest::Response) -> WatchStream {
        WatchStream {
            url,
            resp,
            buf: Vec::new(),
        }
    }

    /// The next event; `Ok(None)` when the server ended the stream.
    pub async fn next_event(&mut self) -> Result<Option<WatchEvent>, ApiError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return self.event(&line).map(Some);
            }
            match self
                .resp
                .chunk()
                .await
                .map_err(|e| classify(&self.url, &e))?
            {
                Some(chunk) => {
                    if self.buf.len() + chunk.len() > MAX_BODY {
                        return Err(ApiError::TooLarge {
                            url: self.url.clone(),
                        });
                    }
                    self.buf.extend_from_slice(&chunk);
                }
                None if self.buf.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                // A final event without its newline.
                None => {
                    let line = std::mem::take(&mut self.buf);
                    return self.event(&line).map(Some);
                }
            }
        }
    }

    fn event(&self, line: &[u8]) -> Result<WatchEvent, ApiError> {
        serde_json::from_slice(line).map_err(|e| ApiError::Decode {
            url: self.url.clone(),
            detail: format!("bad watch event: {e}"),
        })
    }
}
