//! File transfer over HTTP, beside the WebSocket: the page uploads a file to offer
//! (`POST /files?room=…|to=…&name=…`, the raw bytes as the body) and saves a fetched one
//! (`GET /files/{id}`). Both sit behind the same guard as the rest (Host, token).
//!
//! Why HTTP and not the socket: a file is up to `MAX_FILE_SIZE` (4 GiB), far beyond a frame,
//! and the browser's own download (a link with `download`) needs a URL. Why the upload needs
//! `X-Meshchat-Upload: 1`: a cross-site form can POST with no custom header, so the header is a
//! CSRF barrier of its own, on top of the SameSite=Strict cookie.
//!
//! Bounded: the body is streamed to disk (never held whole), refused beyond `MAX_FILE_SIZE`,
//! and at most [`MAX_UPLOADS`] run at once. The uploaded copy is kept under
//! `<data dir>/uploads/`: the node reads it whenever someone fetches the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use meshchat_api::{Event as Line, FileState};
use meshchat_core::transfer::{numbered_name, safe_file_name, MAX_FILE_SIZE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Shared;

/// Uploads streaming at once; more are answered 503 until one ends.
pub const MAX_UPLOADS: usize = 4;
/// The header a page must send with an upload (a cross-site form cannot).
pub const UPLOAD_HEADER: &str = "x-meshchat-upload";
/// Where uploads are kept, in the data dir.
pub const UPLOADS_DIR: &str = "uploads";
/// Bytes read from disk per piece of a download's body.
const READ_PIECE: usize = 64 * 1024;
/// File names tried (`name`, `name (1)`…) before giving up.
const NAME_TRIES: u32 = 1000;

#[derive(serde::Deserialize)]
pub struct UploadQuery {
    room: Option<String>,
    to: Option<String>,
    name: Option<String>,
}

/// An answer as the JSON contract's `error` event, with an HTTP status.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json(status, &meshchat_node::api::error(message))
}

fn json(status: StatusCode, line: &Line) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        line.to_line(),
    )
        .into_response()
}

/// `POST /files?room=ROOM&name=NAME` or `?to=PEER&name=NAME`: stores the body under
/// `uploads/` and offers it; answers `file_offered` (200) or `error` (4xx/5xx).
pub async fn upload(
    State(st): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> Response {
    if headers.get(UPLOAD_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
        return error(
            StatusCode::FORBIDDEN,
            "uploads need the header X-Meshchat-Upload: 1",
        );
    }
    let (room, to) = match (q.room.as_deref(), q.to.as_deref()) {
        (Some(r), None) if !r.is_empty() => (Some(r), None),
        (None, Some(t)) if !t.is_empty() => (None, Some(t)),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "name a room (?room=) or a person (?to=) to offer the file to, not both",
            )
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_FILE_SIZE) {
        return too_large();
    }
    let Ok(_permit) = st.uploads.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_UPLOADS} uploads are running already; try again when one ends"),
        );
    };
    let dir = st.data_dir.join(UPLOADS_DIR);
    let name = safe_file_name(q.name.as_deref().unwrap_or(""));
    let path = match receive(&dir, &name, body).await {
        Ok(path) => path,
        Err(refusal) => return refusal,
    };
    let Some(text) = path.to_str() else {
        let _ = tokio::fs::remove_file(&path).await;
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the data dir's path is not UTF-8",
        );
    };
    match st.handle.send_file(room, to, text).await {
        Ok(file) => json(StatusCode::OK, &Line::FileOffered(file)),
        Err(e) => {
            // Not offered: nobody will fetch it, so the copy goes.
            let _ = tokio::fs::remove_file(&path).await;
            use meshchat_node::Error as E;
            let status = match e {
                E::Stopped => StatusCode::SERVICE_UNAVAILABLE,
                E::Store(_) | E::Network(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            error(status, e.to_string())
        }
    }
}

fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "a file is at most {} bytes",
            meshchat_core::room::human_size(MAX_FILE_SIZE)
        ),
    )
}

/// Streams `body` into a new file in `dir` named after `name`; the file is removed again on
/// any failure (too large, disk full, the client went away), and the answer says why.
async fn receive(dir: &Path, name: &str, body: Body) -> Result<PathBuf, Response> {
    let internal = |what: &str, e: std::io::Error| {
        tracing::warn!("web UI upload: {what}: {e}");
        error(StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: {e}"))
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| internal("cannot make the uploads directory", e))?;
    let (mut file, path) = create_unique(dir, name)
        .await
        .map_err(|e| internal("cannot create the upload's file", e))?;
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    let outcome: Result<(), Response> = async {
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("the upload broke off: {e}"),
                )
            })?;
            total += piece.len() as u64;
            if total > MAX_FILE_SIZE {
                return Err(too_large());
            }
            file.write_all(&piece).await.map_err(write_error)?;
        }
        file.flush().await.map_err(write_error)?;
        file.sync_all().await.map_err(write_error)?;
        Ok(())
    }
    .await;
    drop(file);
    match outcome {
        Ok(()) => Ok(path),
        Err(refusal) => {
            let _ = tokio::fs::remove_file(&path).await;
            Err(refusal)
        }
    }
}

/// A failed write: a full disk is said as such (507), anything else is ours (500).
fn write_error(e: std::io::Error) -> Response {
    if e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded
    {
        error(
            StatusCode::INSUFFICIENT_STORAGE,
            "the disk of the node's data dir is full: the upload was stopped and removed",
        )
    } else {
        tracing::warn!("web UI upload: cannot write: {e}");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the upload: {e}"),
        )
    }
}

/// Creates `dir/name`, or `dir/stem (1).ext`, `(2)`… when taken: never over an existing file
/// (`create_new` decides, so two uploads of one name at once get two files).
async fn create_unique(dir: &Path, name: &str) -> std::io::Result<(tokio::fs::File, PathBuf)> {
    for n in 0..NAME_TRIES {
        let path = dir.join(numbered_name(name, n));
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
        {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("{NAME_TRIES} uploads named {name:?} are kept already"),
    ))
}

/// `GET /files/{id}`: a fetched file (or our own offer) as a download; 404 for anything else.
pub async fn download(State(st): State<Arc<Shared>>, UrlPath(id): UrlPath<String>) -> Response {
    let not_found = || error(StatusCode::NOT_FOUND, "no fetched file with that id");
    let files = match st.handle.files().await {
        Ok(files) => files,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let Some((path, name)) = files.into_iter().find_map(|f| {
        let ready = matches!(f.state, FileState::Done | FileState::Serving);
        (f.id == id && ready).then_some((f.path?, f.name))
    }) else {
        return not_found();
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return not_found(),
        Err(e) => {
            tracing::warn!("web UI: cannot open a fetched file: {e}");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot open the file: {e}"),
            );
        }
    };
    let len = file.metadata().await.ok().map(|m| m.len());
    // The file's bytes, a piece at a time: never read whole.
    let stream = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; READ_PIECE];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    let disposition = format!(
        "attachment; filename*=UTF-8''{}",
        encode_attr(&safe_file_name(&name))
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// RFC 5987 `value-chars`: attr-chars as they are, every other byte as `%XX`.
fn encode_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_names_are_percent_encoded() {
        assert_eq!(encode_attr("a b.txt"), "a%20b.txt");
        assert_eq!(encode_attr("é\"<;"), "%C3%A9%22%3C%3B");
    }
}
