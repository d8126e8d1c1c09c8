use super::Problem;

/// Largest KTP photo accepted: 1 MB (1,048,576 bytes).
pub const KTP_PHOTO_MAX_BYTES: usize = 1024 * 1024;

/// A photo of the KTP: JPEG, PNG or BMP judged by its content (its first
/// bytes), never by its name; at most 1 MB.
#[derive(Clone, PartialEq, Eq)]
pub struct KtpPhoto {
    content_type: &'static str,
    data: Vec<u8>,
}

impl KtpPhoto {
    /// `truncated` says the upload was larger than the limit and only its
    /// start was kept.
    pub fn parse(data: Vec<u8>, truncated: bool) -> Result<KtpPhoto, Problem> {
        if data.is_empty() && !truncated {
            return Err(Problem::PhotoMissing);
        }
        if truncated || data.len() > KTP_PHOTO_MAX_BYTES {
            return Err(Problem::PhotoTooLarge);
        }
        let content_type = sniff(&data).ok_or(Problem::PhotoType)?;
        Ok(KtpPhoto { content_type, data })
    }

    pub fn content_type(&self) -> &'static str {
        self.content_type
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

impl std::fmt::Debug for KtpPhoto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KtpPhoto({}, {} bytes)",
            self.content_type,
            self.data.len()
        )
    }
}

fn sniff(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if data.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if data.len() > 26 && data.starts_with(b"BM") {
        Some("image/bmp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judged_by_content() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        jpeg.resize(2000, 0);
        assert_eq!(
            KtpPhoto::parse(jpeg, false).unwrap().content_type(),
            "image/jpeg"
        );
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.resize(100, 0);
        assert_eq!(
            KtpPhoto::parse(png, false).unwrap().content_type(),
            "image/png"
        );
        let mut bmp = b"BM".to_vec();
        bmp.resize(100, 0);
        assert_eq!(
            KtpPhoto::parse(bmp, false).unwrap().content_type(),
            "image/bmp"
        );
        assert_eq!(
            KtpPhoto::parse(b"this is a text file named ktp.jpg".to_vec(), false),
            Err(Problem::PhotoType)
        );
    }

    #[test]
    fn size_and_presence() {
        assert_eq!(
            KtpPhoto::parse(Vec::new(), false),
            Err(Problem::PhotoMissing)
        );
        let mut big = vec![0xFF, 0xD8, 0xFF];
        big.resize(KTP_PHOTO_MAX_BYTES + 1, 0);
        assert_eq!(KtpPhoto::parse(big, false), Err(Problem::PhotoTooLarge));
        assert_eq!(
            KtpPhoto::parse(vec![0xFF, 0xD8, 0xFF], true),
            Err(Problem::PhotoTooLarge)
        );
    }
}
