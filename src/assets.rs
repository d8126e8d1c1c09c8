//! Static files with content-hashed URLs.
//!
//! The files under `static/` are embedded in the binary (rust-embed; read
//! from disk in debug builds) and hashed once at start-up. Templates refer to
//! them only through [`Assets::url`], which yields `/static/css/site.3f2a9c1b.css`.
//! A hashed URL is immutable for a year; a URL with an outdated hash (a page
//! cached before a deploy) still gets the current file, revalidated each time.

use std::borrow::Cow;
use std::collections::HashMap;

#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct StaticFiles;

const HASH_LEN: usize = 8;

struct Asset {
    hash: String,
    data: Cow<'static, [u8]>,
    /// The file gzip-compressed once at start-up (text files only), so no
    /// request compresses it again.
    gzip: Option<Vec<u8>>,
    content_type: &'static str,
}

/// The table of static files, built once per application.
pub struct Assets {
    files: HashMap<String, Asset>,
}

impl Assets {
    pub fn load() -> Self {
        let files = StaticFiles::iter()
            .filter_map(|name| {
                let file = StaticFiles::get(&name)?;
                let hash: String = file.metadata.sha256_hash()[..HASH_LEN / 2]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let content_type = content_type(&name);
                let compressible =
                    content_type.starts_with("text/") || content_type == "image/svg+xml";
                let gzip = compressible
                    .then(|| crate::compress::gzip(&file.data))
                    .flatten()
                    .filter(|z| z.len() < file.data.len());
                let asset = Asset {
                    hash,
                    content_type,
                    gzip,
                    data: file.data,
                };
                Some((name.into_owned(), asset))
            })
            .collect();
        Assets { files }
    }

    /// The content-hashed URL of a file under `static/`. Panics in tests and
    /// debug builds on a name that does not exist, so a typo in a template is
    /// caught before it ships; release builds fall back to the plain path.
    pub fn url(&self, name: &str) -> String {
        match self.files.get(name) {
            Some(asset) => format!("/static/{}", hashed_name(name, &asset.hash)),
            None => {
                debug_assert!(false, "unknown static asset {name}");
                format!("/static/{name}")
            }
        }
    }
}

fn hashed_name(name: &str, hash: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.ends_with('/') => format!("{stem}.{hash}.{ext}"),
        _ => format!("{name}.{hash}"),
    }
}

/// Splits `css/site.3f2a9c1b.css` into (`css/site.css`, Some("3f2a9c1b")).
fn split_hash(requested: &str) -> (String, Option<&str>) {
    let (dir, file) = match requested.rsplit_once('/') {
        Some((dir, file)) => (Some(dir), file),
        None => (None, requested),
    };
    let parts: Vec<&str> = file.split('.').collect();
    if parts.len() >= 3 {
        let candidate = parts[parts.len() - 2];
        if candidate.len() == HASH_LEN && candidate.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut plain: Vec<&str> = parts[..parts.len() - 2].to_vec();
            plain.push(parts[parts.len() - 1]);
            let plain = plain.join(".");
            let logical = match dir {
                Some(dir) => format!("{dir}/{plain}"),
                None => plain,
            };
            return (logical, Some(candidate));
        }
    }
    (requested.to_string(), None)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// A static file as a URL asks for it.
pub struct Found<'a> {
    pub data: &'a [u8],
    /// The same file gzip-compressed, when that is smaller.
    pub gzip: Option<&'a [u8]>,
    pub content_type: &'static str,
    /// The content hash, quoted, as an `ETag`.
    pub etag: String,
    /// The URL names the current hash: the answer may be kept for a year.
    pub current: bool,
}

impl Assets {
    /// The file behind `/static/{requested}` (hashed or plain name).
    pub fn find(&self, requested: &str) -> Option<Found<'_>> {
        let (logical, hash) = split_hash(requested);
        let asset = self.files.get(&logical)?;
        Some(Found {
            data: &asset.data,
            gzip: asset.gzip.as_deref(),
            content_type: asset.content_type,
            etag: format!("\"{}\"", asset.hash),
            current: hash == Some(asset.hash.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_round_trip() {
        let hashed = hashed_name("css/site.css", "3f2a9c1b");
        assert_eq!(hashed, "css/site.3f2a9c1b.css");
        assert_eq!(
            split_hash(&hashed),
            ("css/site.css".to_string(), Some("3f2a9c1b"))
        );
        assert_eq!(
            split_hash("img/logo.min.0123abcd.svg"),
            ("img/logo.min.svg".to_string(), Some("0123abcd"))
        );
        assert_eq!(
            split_hash("css/site.css"),
            ("css/site.css".to_string(), None)
        );
        assert_eq!(
            split_hash("css/site.notahash.css"),
            ("css/site.notahash.css".to_string(), None)
        );
    }

    #[test]
    fn every_embedded_file_has_a_hashed_url() {
        let assets = Assets::load();
        let url = assets.url("css/site.css");
        assert!(url.starts_with("/static/css/site."), "{url}");
        assert_eq!(url.len(), "/static/css/site..css".len() + HASH_LEN);
    }
}
