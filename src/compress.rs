//! gzip for pages, cheap enough for a deadline day.
//!
//! [`gzip`] compresses a body with a compressor each worker thread keeps
//! (setting one up cost more than compressing a 5 KB page).
//!
//! [`Spliced`] goes further for the busiest pages (the start page, the empty
//! registration form, the sign-in form), which differ between visitors only
//! in a few tokens. The page is rendered with placeholders where the tokens
//! go; the text between them is compressed once, as raw deflate blocks that
//! end on a byte boundary, and kept. Each answer is then those blocks with
//! the visitor's tokens between them as stored (uncompressed) deflate
//! blocks, and the CRC-32 combined from the parts': a valid gzip stream
//! (RFC 1951/1952) with no compression work per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use flate2::{Compress, Compression, FlushCompress, Status};

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Compress> =
        std::cell::RefCell::new(Compress::new_gzip(Compression::fast(), 15));
}

/// `bytes` gzip-compressed at the fast level, or `None` if compression
/// failed (the caller then sends the body as it is).
pub fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with_borrow_mut(|compressor| {
        compressor.reset();
        run(
            compressor,
            bytes,
            FlushCompress::Finish,
            bytes.len() / 2 + 64,
        )
    })
}

/// Feeds all of `bytes` to `compressor` with `flush` at the end.
fn run(
    compressor: &mut Compress,
    bytes: &[u8],
    flush: FlushCompress,
    cap: usize,
) -> Option<Vec<u8>> {
    let start = compressor.total_in();
    let mut out = Vec::with_capacity(cap);
    loop {
        let done = usize::try_from(compressor.total_in() - start).ok()?;
        let before = compressor.total_out();
        let status = compressor
            .compress_vec(bytes.get(done..)?, &mut out, flush)
            .map_err(|e| tracing::warn!(error = %e, "gzip failed; sending uncompressed"))
            .ok()?;
        let finished = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // A sync flush is complete when input is used up and the last
            // call had room left over (so nothing is pending).
            _ => done == bytes.len() && out.len() < out.capacity(),
        };
        if finished {
            return Some(out);
        }
        if compressor.total_out() == before || out.len() == out.capacity() {
            out.reserve(out.capacity().max(64));
        }
    }
}

/// Marks the place of the `i`th token in a page rendered for splicing. A
/// control character (never in our templates, never escaped by askama).
pub fn placeholder(i: usize) -> String {
    format!("\u{1}splice{i}\u{1}")
}

/// A page's fixed text, compressed once, with places for tokens.
pub struct Spliced {
    /// The page as rendered with placeholders (the cache key, compared in
    /// full so that two pages never share an entry).
    template: String,
    /// Raw deflate blocks of each fixed part; all but the last end with a
    /// sync flush (byte-aligned, not final), the last with the final block.
    parts: Vec<Vec<u8>>,
    /// CRC-32 state and length of each fixed part.
    crcs: Vec<crc32fast::Hasher>,
    lens: Vec<usize>,
}

impl Spliced {
    fn build(template: String, tokens: usize) -> Option<Spliced> {
        let mut fixed = Vec::with_capacity(tokens + 1);
        let mut rest = template.as_str();
        for i in 0..tokens {
            let mark = placeholder(i);
            let at = rest.find(&mark)?;
            fixed.push(&rest[..at]);
            rest = &rest[at + mark.len()..];
        }
        fixed.push(rest);
        // A token used twice (or a placeholder past the last token) cannot
        // be spliced: the caller compresses the page as a whole instead.
        if fixed.iter().any(|text| text.contains("\u{1}splice")) {
            return None;
        }
        let last = fixed.len() - 1;
        let mut parts = Vec::with_capacity(fixed.len());
        for (i, text) in fixed.iter().enumerate() {
            // Each part on its own (no back-references across a token).
            let mut compressor = Compress::new(Compression::default(), false);
            let flush = if i == last {
                FlushCompress::Finish
            } else {
                FlushCompress::Sync
            };
            parts.push(run(
                &mut compressor,
                text.as_bytes(),
                flush,
                text.len() / 2 + 64,
            )?);
        }
        let crcs = fixed
            .iter()
            .map(|text| {
                let mut crc = crc32fast::Hasher::new();
                crc.update(text.as_bytes());
                crc
            })
            .collect();
        let lens = fixed.iter().map(|t| t.len()).collect();
        Some(Spliced {
            template,
            parts,
            crcs,
            lens,
        })
    }

    /// The gzip stream of the page with `tokens` in their places.
    pub fn gzip(&self, tokens: &[&str]) -> Option<Vec<u8>> {
        if tokens.len() + 1 != self.parts.len() || tokens.iter().any(|t| t.len() > 65_535) {
            return None;
        }
        let size: usize = self.parts.iter().map(Vec::len).sum::<usize>()
            + tokens.iter().map(|t| t.len() + 5).sum::<usize>()
            + 18;
        let mut out = Vec::with_capacity(size);
        // Header: magic, deflate, no flags, no time, no extra flags, OS unknown.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        let mut crc = self.crcs[0].clone();
        let mut total = self.lens[0];
        out.extend_from_slice(&self.parts[0]);
        for (i, token) in tokens.iter().enumerate() {
            // A stored block: BFINAL 0, BTYPE 00 (the byte-aligned header
            // byte), LEN and its complement, then the bytes.
            let len = u16::try_from(token.len()).ok()?;
            out.push(0);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(token.as_bytes());
            let mut token_crc = crc32fast::Hasher::new();
            token_crc.update(token.as_bytes());
            crc.combine(&token_crc);
            crc.combine(&self.crcs[i + 1]);
            total += token.len() + self.lens[i + 1];
            out.extend_from_slice(&self.parts[i + 1]);
        }
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&(total as u32).to_le_bytes());
        Some(out)
    }

    /// The page with `tokens` in their places, uncompressed.
    pub fn plain(template: &str, tokens: &[&str]) -> String {
        let mut page = template.to_string();
        for (i, token) in tokens.iter().enumerate() {
            page = page.replace(&placeholder(i), token);
        }
        page
    }
}

/// The spliced form of a page rendered with placeholders: built on first
/// use, then shared (at most 256 pages are kept; the set is small: a few
/// pages in two languages, signed in or not).
pub fn spliced(template: &str, tokens: usize) -> Option<Arc<Spliced>> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Arc<Spliced>>>> = OnceLock::new();
    let key = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        template.hash(&mut hasher);
        hasher.finish()
    };
    let cache = CACHE.get_or_init(Mutex::default);
    if let Ok(map) = cache.lock()
        && let Some(found) = map.get(&key).filter(|s| s.template == template)
    {
        return Some(found.clone());
    }
    // Only a page not seen before is copied (and compressed).
    let built = Arc::new(Spliced::build(template.to_string(), tokens)?);
    if let Ok(mut map) = cache.lock() {
        if map.len() >= 256 {
            map.clear();
        }
        map.insert(key, built.clone());
    }
    Some(built)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> String {
        let mut out = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut out)
            .expect("a valid gzip stream");
        out
    }

    #[test]
    fn the_reused_compressor_makes_whole_streams() {
        for page in ["<p>halo</p>".repeat(100), "<p>lagi</p>".repeat(3000)] {
            assert_eq!(gunzip(&gzip(page.as_bytes()).unwrap()), page);
        }
    }

    #[test]
    fn spliced_pages_are_valid_gzip_with_the_tokens_in_place() {
        let template = format!(
            "<html><p>{}</p><input value=\"{}\"><p>{}</p></html>",
            "awal ".repeat(500),
            placeholder(0),
            placeholder(1),
        ) + &"akhir ".repeat(700);
        let spliced = spliced(&template, 2).unwrap();
        for tokens in [
            ["abc123", "x.y.z"],
            ["", "0123456789abcdef".repeat(4).as_str()],
        ] {
            let expected = Spliced::plain(&template, &tokens);
            assert!(!expected.contains('\u{1}'));
            assert_eq!(gunzip(&spliced.gzip(&tokens).unwrap()), expected);
        }
        // No tokens at all: the whole page compressed once.
        let still = spliced_page_without_tokens();
        assert_eq!(gunzip(&still.gzip(&[]).unwrap()), "<p>tetap</p>".repeat(50));
        // The wrong number of tokens is refused, not mangled.
        assert!(spliced.gzip(&["a"]).is_none());
        // A token in two places cannot be spliced (the page is then
        // compressed whole); both places get it in the plain page.
        let twice = format!("<a>{}</a><b>{}</b>", placeholder(0), placeholder(0));
        assert!(super::spliced(&twice, 1).is_none());
        assert_eq!(Spliced::plain(&twice, &["t"]), "<a>t</a><b>t</b>");
    }

    fn spliced_page_without_tokens() -> Arc<Spliced> {
        spliced(&"<p>tetap</p>".repeat(50), 0).unwrap()
    }
}
