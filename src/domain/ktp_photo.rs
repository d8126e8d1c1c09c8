//! The KTP photo as phones make them (camera JPEGs of 12 MP and more,
//! rotated by EXIF, screenshots as PNG, WebP, sometimes BMP), judged by
//! decoding it and kept as what staff need and nothing more: upright, at
//! most 1600 px on the long edge, JPEG, no metadata at all (EXIF can hold
//! the GPS position of the citizen's home).

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, metadata::Orientation};

use super::Problem;

/// Largest upload accepted on the registration form, by default (15 MB);
/// `EMETERAI_KTP_UPLOAD_MAX_BYTES` changes it.
pub const KTP_UPLOAD_MAX_BYTES: usize = 15 * 1024 * 1024;

/// Largest stored photo: what normalisation always stays under.
pub const KTP_PHOTO_MAX_BYTES: usize = 1024 * 1024;

/// The stored photo's long edge, at most.
pub const KTP_MAX_EDGE: u32 = 1600;

/// Camera JPEGs are decoded straight from the DCT at the smallest scale
/// (1/2, 1/4, 1/8) that keeps this many pixels on the long edge: a 12 MP
/// photo becomes 1000 x 750, where a KTP filling most of the frame still
/// has about 9 px per millimetre (its smallest print is about 2 mm high),
/// and it needs neither a resize nor a large encode.
pub const KTP_DECODED_EDGE: u32 = 1000;

/// Below this on the long edge the KTP's text cannot be read.
pub const KTP_MIN_EDGE: u32 = 600;

/// More pixels than this is no phone photo (a "decompression bomb"): refused
/// from the header, before decoding.
pub const KTP_MAX_PIXELS: u64 = 50_000_000;

/// A normalised KTP photo: a JPEG of at most 1600 px and 1 MB, upright,
/// without metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct KtpPhoto {
    data: Vec<u8>,
    width: u32,
    height: u32,
}

impl KtpPhoto {
    /// Judges an upload by decoding it and normalises it. `truncated` says
    /// the upload was larger than the limit and was not kept. CPU-heavy
    /// (tens of milliseconds for a camera photo): run it off the async
    /// workers.
    pub fn parse(data: &[u8], truncated: bool) -> Result<KtpPhoto, Problem> {
        if truncated {
            return Err(Problem::PhotoTooLarge);
        }
        if data.is_empty() {
            return Err(Problem::PhotoMissing);
        }
        if is_heif(data) {
            return Err(Problem::PhotoHeic);
        }
        let format = match image::guess_format(data) {
            Ok(
                f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Bmp),
            ) => f,
            _ => return Err(Problem::PhotoType),
        };
        // The size from the header alone.
        let (width, height) = ImageReader::with_format(Cursor::new(data), format)
            .into_dimensions()
            .map_err(|_| Problem::PhotoUnreadable)?;
        if u64::from(width) * u64::from(height) > KTP_MAX_PIXELS {
            return Err(Problem::PhotoTooManyPixels);
        }
        if width.max(height) < KTP_MIN_EDGE {
            return Err(Problem::PhotoTooSmall);
        }
        // Already what we keep (a browser-shrunk photo): judged by decoding
        // it whole at 1/8 scale, then only its metadata segments dropped.
        if format == ImageFormat::Jpeg
            && data.len() <= KTP_PHOTO_MAX_BYTES
            && width.max(height) <= KTP_MAX_EDGE
            && let Some(stripped) = upright_jpeg_without_metadata(data)?
        {
            return Ok(KtpPhoto {
                data: stripped,
                width,
                height,
            });
        }
        let (decoded, orientation) = match format {
            ImageFormat::Jpeg => decode_jpeg_scaled(data, width, height)?,
            _ => decode_other(data, format)?,
        };
        let long = decoded.width().max(decoded.height());
        let mut image = DynamicImage::ImageRgb8(if long > KTP_MAX_EDGE {
            shrink(&decoded, KTP_MAX_EDGE, long)?
        } else {
            decoded
        });
        image.apply_orientation(orientation);
        let mut rgb = image.into_rgb8();
        // A photo is typically 150-400 KB at the first quality; one full of
        // fine detail (noise, a screen photographed) needs less quality, or
        // at last fewer pixels, to stay within 1 MB.
        loop {
            for quality in [82, 70, 55] {
                let data = encode_jpeg(&rgb, quality)?;
                if data.len() <= KTP_PHOTO_MAX_BYTES {
                    return Ok(KtpPhoto {
                        data,
                        width: rgb.width(),
                        height: rgb.height(),
                    });
                }
            }
            if rgb.width().max(rgb.height()) <= KTP_MIN_EDGE {
                return Err(Problem::PhotoUnreadable);
            }
            let long = rgb.width().max(rgb.height());
            rgb = shrink(&rgb, long * 3 / 4, long)?;
        }
    }

    /// Whether stored bytes are already what `parse` makes: a JPEG of at most
    /// 1 MB and 1600 px without EXIF (so re-encoding would only lose quality).
    pub fn is_normalized(data: &[u8]) -> bool {
        let head = &data[..data.len().min(64 * 1024)];
        data.len() <= KTP_PHOTO_MAX_BYTES
            && matches!(image::guess_format(data), Ok(ImageFormat::Jpeg))
            && !head.windows(6).any(|w| w == b"Exif\0\0")
            && ImageReader::with_format(Cursor::new(data), ImageFormat::Jpeg)
                .into_dimensions()
                .is_ok_and(|(w, h)| w.max(h) <= KTP_MAX_EDGE)
    }

    pub fn content_type(&self) -> &'static str {
        "image/jpeg"
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

impl std::fmt::Debug for KtpPhoto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KtpPhoto({}x{}, {} bytes)",
            self.width,
            self.height,
            self.data.len()
        )
    }
}

/// iPhones' HEIC/HEIF (an ISO-BMFF `ftyp` box with a HEIF brand).
fn is_heif(data: &[u8]) -> bool {
    data.len() > 12
        && &data[4..8] == b"ftyp"
        && matches!(
            &data[8..12],
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" | b"avif"
        )
}

/// A camera JPEG decoded straight at 1/2, 1/4 or 1/8 scale where that still
/// leaves at least [`KTP_DECODED_EDGE`] on the long edge, with its EXIF
/// orientation.
fn decode_jpeg_scaled(
    data: &[u8],
    width: u32,
    height: u32,
) -> Result<(image::RgbImage, Orientation), Problem> {
    let unreadable = |_| Problem::PhotoUnreadable;
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(data));
    let long = width.max(height).max(1);
    let want = |side: u32| {
        u16::try_from((u64::from(side) * u64::from(KTP_DECODED_EDGE) / u64::from(long)).max(1))
            .unwrap_or(u16::MAX)
    };
    decoder
        .scale(want(width), want(height))
        .map_err(unreadable)?;
    let pixels = decoder.decode().map_err(unreadable)?;
    let info = decoder.info().ok_or(Problem::PhotoUnreadable)?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let image = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => {
            image::RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
        }
        jpeg_decoder::PixelFormat::L8 => {
            image::GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
        }
        jpeg_decoder::PixelFormat::L16 => {
            let wide: Vec<u16> = pixels
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            image::ImageBuffer::from_raw(w, h, wide).map(DynamicImage::ImageLuma16)
        }
        jpeg_decoder::PixelFormat::CMYK32 => {
            let rgb: Vec<u8> = pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = u16::from(p[3]);
                    [p[0], p[1], p[2]].map(|c| (u16::from(c) * k / 255) as u8)
                })
                .collect();
            image::RgbImage::from_raw(w, h, rgb).map(DynamicImage::ImageRgb8)
        }
    }
    .ok_or(Problem::PhotoUnreadable)?
    .into_rgb8();
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    Ok((image, orientation))
}

/// For a small JPEG that needs no turning: decodes it to the end at 1/8
/// scale (a damaged file fails here) and returns it without any metadata
/// segment (EXIF with GPS, XMP, ICC, comments), its pixels untouched.
/// `None` when it must be re-encoded (its EXIF turns it).
fn upright_jpeg_without_metadata(data: &[u8]) -> Result<Option<Vec<u8>>, Problem> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(data));
    decoder.scale(1, 1).map_err(|_| Problem::PhotoUnreadable)?;
    decoder.decode().map_err(|_| Problem::PhotoUnreadable)?;
    let turned = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .is_some_and(|o| o != Orientation::NoTransforms);
    if turned {
        return Ok(None);
    }
    Ok(strip_jpeg_metadata(data))
}

/// The JPEG with its APP1-APP15 and COM segments left out; everything from
/// the start of scan on is copied as it is. `None` if the markers do not
/// parse (the caller then re-encodes).
fn strip_jpeg_metadata(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(data.get(..2).filter(|soi| soi == &[0xFF, 0xD8])?);
    let mut at = 2;
    loop {
        let marker = *data.get(at + 1).filter(|_| data.get(at) == Some(&0xFF))?;
        let length = usize::from(u16::from_be_bytes([*data.get(at + 2)?, *data.get(at + 3)?]));
        let segment = data.get(at..at + 2 + length)?;
        match marker {
            // Start of scan: the rest is image data.
            0xDA => {
                out.extend_from_slice(&data[at..]);
                return Some(out);
            }
            0xE1..=0xEF | 0xFE => {}
            _ => out.extend_from_slice(segment),
        }
        at += 2 + length;
    }
}

/// PNG, WebP and BMP, decoded whole (within the pixel budget and a memory
/// limit), with the orientation their metadata gives, if any.
fn decode_other(
    data: &[u8],
    format: ImageFormat,
) -> Result<(image::RgbImage, Orientation), Problem> {
    let unreadable = |_| Problem::PhotoUnreadable;
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(KTP_MAX_PIXELS * 4 + 64 * 1024 * 1024);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    Ok((image.into_rgb8(), orientation))
}

/// Scales so that the long edge (now `long`) becomes `edge`, in one pass
/// (fast_image_resize: SIMD, several times faster than `image`'s resize).
fn shrink(rgb: &image::RgbImage, edge: u32, long: u32) -> Result<image::RgbImage, Problem> {
    use fast_image_resize as fir;
    let scale =
        |side: u32| ((u64::from(side) * u64::from(edge) / u64::from(long.max(1))) as u32).max(1);
    let (w, h) = (scale(rgb.width()), scale(rgb.height()));
    let source = fir::images::ImageRef::new(
        rgb.width(),
        rgb.height(),
        rgb.as_raw(),
        fir::PixelType::U8x3,
    )
    .map_err(|_| Problem::PhotoUnreadable)?;
    let mut target = fir::images::Image::new(w, h, fir::PixelType::U8x3);
    fir::Resizer::new()
        .resize(
            &source,
            &mut target,
            &fir::ResizeOptions::new()
                .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear)),
        )
        .map_err(|_| Problem::PhotoUnreadable)?;
    image::RgbImage::from_raw(w, h, target.into_vec()).ok_or(Problem::PhotoUnreadable)
}

/// A baseline JPEG with no metadata at all (jpeg-encoder: about three
/// times faster than `image`'s encoder).
fn encode_jpeg(rgb: &image::RgbImage, quality: u8) -> Result<Vec<u8>, Problem> {
    let (Ok(w), Ok(h)) = (u16::try_from(rgb.width()), u16::try_from(rgb.height())) else {
        return Err(Problem::PhotoUnreadable);
    };
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(rgb.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|_| Problem::PhotoUnreadable)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
        })
    }

    fn encoded(image: &image::RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_large_jpeg_becomes_a_small_upright_one() {
        let photo =
            KtpPhoto::parse(&encoded(&gradient(3200, 2400), ImageFormat::Jpeg), false).unwrap();
        assert_eq!(photo.dimensions(), (1600, 1200));
        assert!(photo.data().len() <= KTP_PHOTO_MAX_BYTES);
        assert!(photo.data().starts_with(&[0xFF, 0xD8]));
    }

    #[test]
    fn png_webp_and_bmp_are_accepted() {
        for format in [ImageFormat::Png, ImageFormat::WebP, ImageFormat::Bmp] {
            let photo = KtpPhoto::parse(&encoded(&gradient(1000, 700), format), false)
                .unwrap_or_else(|p| panic!("{format:?}: {p:?}"));
            assert_eq!(photo.dimensions(), (1000, 700), "{format:?}");
        }
    }

    #[test]
    fn what_is_no_usable_photo_is_refused() {
        let jpeg = encoded(&gradient(1200, 800), ImageFormat::Jpeg);
        let cases: Vec<(Vec<u8>, Problem)> = vec![
            (b"just some text".to_vec(), Problem::PhotoType),
            (jpeg[..jpeg.len() / 3].to_vec(), Problem::PhotoUnreadable),
            (
                encoded(&gradient(120, 76), ImageFormat::Png),
                Problem::PhotoTooSmall,
            ),
            (
                [&[0, 0, 0, 24][..], b"ftypheic", &[0; 16]].concat(),
                Problem::PhotoHeic,
            ),
        ];
        for (data, expected) in cases {
            assert_eq!(KtpPhoto::parse(&data, false).unwrap_err(), expected);
        }
        assert_eq!(
            KtpPhoto::parse(&jpeg, true).unwrap_err(),
            Problem::PhotoTooLarge
        );
    }

    /// A small upright JPEG (what the browser sends after shrinking) keeps
    /// its pixels and loses its metadata, without re-encoding.
    #[test]
    fn a_small_jpeg_only_loses_its_metadata() {
        let jpeg = encoded(&gradient(1200, 900), ImageFormat::Jpeg);
        // APP1 "Exif" with a TIFF header and an empty IFD, then a comment.
        let mut tiff = b"II*\0".to_vec();
        tiff.extend(8u32.to_le_bytes());
        tiff.extend(0u16.to_le_bytes());
        tiff.extend(0u32.to_le_bytes());
        let mut with_metadata = jpeg[..2].to_vec();
        with_metadata.extend([0xFF, 0xE1]);
        with_metadata.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
        with_metadata.extend(b"Exif\0\0");
        with_metadata.extend(&tiff);
        with_metadata.extend([0xFF, 0xFE, 0x00, 0x0A]);
        with_metadata.extend(b"GPS -6.2");
        with_metadata.extend(&jpeg[2..]);
        let photo = KtpPhoto::parse(&with_metadata, false).unwrap();
        assert_eq!(photo.dimensions(), (1200, 900));
        assert!(!photo.data().windows(4).any(|w| w == b"Exif"));
        assert!(!photo.data().windows(3).any(|w| w == b"GPS"));
        assert_eq!(
            photo.data(),
            &jpeg[..],
            "the image data itself is untouched"
        );
    }

    /// A PNG whose header claims 30000 x 30000 pixels (900 MP) is refused
    /// from the header, without decoding.
    #[test]
    fn a_pixel_bomb_is_refused_before_decoding() {
        let mut png = encoded(&gradient(800, 600), ImageFormat::Png);
        // IHDR: length (4) "IHDR" (4) width (4) height (4) ... CRC over type+data.
        png[16..20].copy_from_slice(&30_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&30_000u32.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        assert_eq!(
            KtpPhoto::parse(&png, false).unwrap_err(),
            Problem::PhotoTooManyPixels
        );
    }
}
