//! KTP photos as phones make them: real images made here (a camera-like
//! JPEG with EXIF orientation and GPS, a large PNG, WebP), stored small,
//! upright and without metadata; what is no usable photo comes back with
//! the answers kept; staff open a citizen's photo, audited.

use diesel::prelude::*;
use emeterai::schema::{ktp_uploads, staff_audit};
use image::ImageFormat;

use crate::helpers::{Backend, Registration, TestApp, encode_image, fake_jpeg};
use crate::on_both_backends;

/// An EXIF APP1 segment (little-endian TIFF) with an orientation and a GPS
/// block (latitude reference "S": Indonesia is mostly south).
fn exif_app1(orientation: u16) -> Vec<u8> {
    let mut tiff: Vec<u8> = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes());
    // IFD0: two entries, then the next-IFD offset.
    tiff.extend(2u16.to_le_bytes());
    tiff.extend(0x0112u16.to_le_bytes()); // Orientation
    tiff.extend(3u16.to_le_bytes()); // SHORT
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(orientation.to_le_bytes());
    tiff.extend([0, 0]);
    tiff.extend(0x8825u16.to_le_bytes()); // GPS IFD pointer
    tiff.extend(4u16.to_le_bytes()); // LONG
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(38u32.to_le_bytes());
    tiff.extend(0u32.to_le_bytes());
    // GPS IFD at 38: GPSLatitudeRef = "S".
    tiff.extend(1u16.to_le_bytes());
    tiff.extend(0x0001u16.to_le_bytes());
    tiff.extend(2u16.to_le_bytes()); // ASCII
    tiff.extend(2u32.to_le_bytes());
    tiff.extend(*b"S\0\0\0");
    tiff.extend(0u32.to_le_bytes());
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend(b"Exif\0\0");
    app1.extend(tiff);
    app1
}

/// A 4000 x 3000 camera-like JPEG (quality 90: several MB), stored by the
/// camera sideways with EXIF orientation 6; its top-left corner is red.
fn camera_photo() -> Vec<u8> {
    let image = image::RgbImage::from_fn(4000, 3000, |x, y| {
        if x < 800 && y < 600 {
            image::Rgb([220, 20, 20])
        } else {
            image::Rgb([
                ((x * 7 + y * 3) % 200) as u8,
                ((x ^ y) % 180) as u8,
                ((x * y) % 160) as u8,
            ])
        }
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&image)
        .unwrap();
    let mut with_exif = jpeg[..2].to_vec();
    with_exif.extend(exif_app1(6));
    with_exif.extend(&jpeg[2..]);
    with_exif
}

fn stored_photo(app: &TestApp, email: &str) -> Vec<u8> {
    let mut conn = app.state.pool.get().unwrap();
    let upload = emeterai::db::registrations::find_by_email(&mut conn, &app.state.keys, email)
        .unwrap()
        .unwrap()
        .ktp_upload_id;
    // Stored sealed; opened as staff would see it.
    emeterai::db::accounts::find_upload(&mut conn, &app.state.keys, &upload)
        .unwrap()
        .unwrap()
        .1
}

async fn camera_photo_is_stored_upright_small_and_without_metadata(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let original = camera_photo();
    assert!(original.len() > 2_000_000, "{}", original.len());
    let mut siti = Registration {
        photo: Some(("IMG_20261125_101500.jpg".into(), original)),
        ..Default::default()
    };
    let response = app.register(&mut siti).await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    let stored = stored_photo(&app, "siti.aminah@example.co.id");
    assert!(stored.len() <= 1024 * 1024, "{}", stored.len());
    assert!(
        !stored.windows(4).any(|w| w == b"Exif" || w == b"II*\0"),
        "metadata kept"
    );
    let image = image::load_from_memory_with_format(&stored, ImageFormat::Jpeg)
        .unwrap()
        .into_rgb8();
    // Upright: portrait, and the red corner is now at the top right;
    // decoded at 1/4 scale (1000 px on the long edge, no resize).
    assert_eq!(image.dimensions(), (750, 1000));
    let corner = image.get_pixel(720, 50);
    assert!(corner[0] > 180 && corner[1] < 70, "{corner:?}");
    let other = image.get_pixel(50, 50);
    assert!(other[0] < 200 || other[1] > 70, "{other:?}");
}

async fn png_and_webp_screenshots_are_accepted(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let screenshot = image::RgbImage::from_fn(2400, 1080, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    for (i, format) in [ImageFormat::Png, ImageFormat::WebP]
        .into_iter()
        .enumerate()
    {
        let email = format!("layar{i}@example.com");
        let mut citizen = Registration {
            email: email.clone(),
            nik: format!("320101170890000{}", i + 4),
            birth_date: "1990-08-17".into(),
            photo: Some(("layar".into(), encode_image(&screenshot, format))),
            ..Default::default()
        };
        let response = app.register(&mut citizen).await;
        assert_eq!(response.status(), 303, "{format:?}");
        let stored = stored_photo(&app, &email);
        let image = image::load_from_memory_with_format(&stored, ImageFormat::Jpeg).unwrap();
        assert_eq!((image.width(), image.height()), (1600, 720), "{format:?}");
    }
}

async fn unusable_photos_come_back_with_the_answers_kept(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let good = encode_image(
        &image::RgbImage::from_pixel(1200, 800, image::Rgb([90, 90, 90])),
        ImageFormat::Jpeg,
    );
    let mut bomb = encode_image(
        &image::RgbImage::from_pixel(800, 600, image::Rgb([0, 0, 0])),
        ImageFormat::Png,
    );
    bomb[16..20].copy_from_slice(&30_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&30_000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    let heic = [&[0, 0, 0, 24][..], b"ftypheic", &[0; 64]].concat();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not an image",
            b"%PDF-1.7 not a photo".to_vec(),
            "JPG, PNG, WebP, atau BMP",
        ),
        (
            "JPEG header, garbage after",
            fake_jpeg(50_000),
            "tidak dapat dibuka sebagai gambar",
        ),
        (
            "truncated JPEG",
            good[..good.len() / 2].to_vec(),
            "tidak dapat dibuka sebagai gambar",
        ),
        (
            "120 x 76",
            encode_image(&image::RgbImage::new(120, 76), ImageFormat::Png),
            "terlalu kecil untuk dibaca",
        ),
        ("900 MP pixel bomb", bomb, "lebih dari 50 megapiksel"),
        ("HEIC", heic, "Paling Kompatibel"),
    ];
    for (what, data, message) in cases {
        let mut input = Registration {
            photo: Some(("ktp".into(), data)),
            ..Default::default()
        };
        let response = app.register(&mut input).await;
        assert_eq!(response.status(), 422, "{what}");
        let html = response.text().await.unwrap();
        assert!(html.contains(message), "{what}: {message} not in\n{html}");
        assert!(
            html.contains(r#"value="Siti Aminah""#),
            "{what}: answers kept"
        );
        assert!(html.contains(r#"value="siti.aminah@example.co.id""#));
    }
    let mut conn = app.state.pool.get().unwrap();
    let stored: i64 = ktp_uploads::table.count().get_result(&mut *conn).unwrap();
    assert_eq!(stored, 0, "nothing stored for unusable photos");
}

async fn staff_open_a_citizens_photo_and_each_view_is_audited(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let staff = crate::staff::signed_in_staff(&app).await;
    app.register(&mut Registration::default()).await;
    // The citizen meets a failure later (a mistyped phone).
    let form = app
        .register_stuck(&mut Registration {
            phone: "021".into(),
            ..Default::default()
        })
        .await
        .text()
        .await
        .unwrap();
    let i = form.find("DFT-").unwrap();
    let reference = form[i..i + 13].to_string();
    let detail = staff
        .get(app.url(&format!("/staff/failures/{reference}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(detail.contains("Buka foto KTP"), "{detail}");
    let start = detail
        .find(&format!("/staff/failures/{reference}/photo/"))
        .unwrap();
    let path = detail[start..start + detail[start..].find('"').unwrap()].to_string();
    // Not for anonymous visitors, nor for citizens.
    let anonymous = app.new_browser().get(app.url(&path)).send().await.unwrap();
    assert_eq!(anonymous.status(), 403);
    assert!(anonymous.text().await.unwrap().contains("1500 159"));
    app.register_and_verify(&mut Registration::budi()).await;
    let citizen = app.get(&path).await;
    assert_eq!(citizen.status(), 403);

    let response = staff.get(app.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    let bytes = response.bytes().await.unwrap();
    assert!(image::load_from_memory(&bytes).is_ok());
    // Another failure's reference does not open this photo.
    let other = path.replace(&reference, "DFT-2222-2222");
    assert_eq!(
        staff.get(app.url(&other)).send().await.unwrap().status(),
        404
    );

    let mut conn = app.state.pool.get().unwrap();
    let views: Vec<String> = staff_audit::table
        .filter(staff_audit::action.eq("view_ktp_photo"))
        .select(staff_audit::target)
        .load(&mut *conn)
        .unwrap();
    assert_eq!(views.len(), 1);
    assert!(views[0].starts_with(&reference));
}

/// Photos stored before normalisation (with EXIF, full size) are
/// re-encoded by `emeterai photos reencode`; normalised ones are left
/// alone, and ones that never decoded stay readable as they were.
async fn stored_photos_are_reencoded_by_the_command(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    let old = camera_photo();
    let now = app.state.clock.now();
    let mut conn = app.state.pool.get().unwrap();
    for (id, data) in [
        ("00000000-0000-4000-8000-000000000001", old.as_slice()),
        (
            "00000000-0000-4000-8000-000000000002",
            &fake_jpeg(30_000)[..],
        ),
    ] {
        // Stored in clear, as versions before sealing did.
        diesel::insert_into(ktp_uploads::table)
            .values(&emeterai::db::accounts::NewUpload {
                id,
                file_name: "lama.jpg",
                content_type: "image/jpeg",
                size_bytes: data.len() as i64,
                data,
                created_at: now,
                data_key_id: None,
            })
            .execute(&mut *conn)
            .unwrap();
    }
    let keys = app.state.keys.clone();
    let report = emeterai::db::accounts::reencode_photos(&mut conn, &keys, now).unwrap();
    assert_eq!(
        (
            report.reencoded,
            report.already_normalized,
            report.unreadable
        ),
        (1, 1, 1)
    );
    let id = "00000000-0000-4000-8000-000000000001";
    let (stored, size): (Vec<u8>, i64) = ktp_uploads::table
        .find(id)
        .select((ktp_uploads::data, ktp_uploads::size_bytes))
        .first(&mut *conn)
        .unwrap();
    // Sealed again once re-encoded.
    assert!(emeterai::domain::sealed::is_sealed(&stored));
    let (_, data) = emeterai::db::accounts::find_upload(&mut conn, &keys, id)
        .unwrap()
        .unwrap();
    assert_eq!(size as usize, data.len());
    assert!(data.len() <= 1024 * 1024);
    assert!(!data.windows(4).any(|w| w == b"Exif"));
    // Run again: nothing left to do.
    let again = emeterai::db::accounts::reencode_photos(&mut conn, &keys, now).unwrap();
    assert_eq!((again.reencoded, again.already_normalized), (0, 2));
}

on_both_backends!(
    camera_photo_is_stored_upright_small_and_without_metadata,
    png_and_webp_screenshots_are_accepted,
    unusable_photos_come_back_with_the_answers_kept,
    staff_open_a_citizens_photo_and_each_view_is_audited,
    stored_photos_are_reencoded_by_the_command,
);
