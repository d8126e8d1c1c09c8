//! KTP photos sealed at rest (envelope encryption, `domain/sealed.rs`): a
//! copy of the database (the SQLite file, a `pg_dump`) holds none of the
//! photos; a sealed photo moved to another row does not open; photos an
//! earlier version stored in clear are sealed after the upgrade; rotation
//! re-wraps every data key; a purged photo's data key is destroyed.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use emeterai::db::DbConn;
use emeterai::schema::{data_keys, ktp_uploads};

use crate::helpers::{Backend, Registration, TestApp};
use crate::on_both_backends;

/// Every stored photo: (id, stored bytes, data key id).
fn stored_photos(app: &TestApp) -> Vec<(String, Vec<u8>, Option<String>)> {
    let mut conn = app.state.pool.get().unwrap();
    ktp_uploads::table
        .select((ktp_uploads::id, ktp_uploads::data, ktp_uploads::data_key_id))
        .order(ktp_uploads::id.asc())
        .load(&mut *conn)
        .unwrap()
}

fn opened(app: &TestApp, id: &str) -> Result<Vec<u8>, emeterai::error::AppError> {
    let mut conn = app.state.pool.get().unwrap();
    emeterai::db::accounts::find_upload(&mut conn, &app.state.keys, id)
        .map(|found| found.expect("the photo is there").1)
}

/// Everything a thief of the database would hold: the SQLite file with
/// its write-ahead log, or a `pg_dump` of the PostgreSQL database.
pub(crate) fn database_copy(app: &TestApp, backend: Backend) -> Vec<u8> {
    match backend {
        Backend::Sqlite => {
            let mut bytes = std::fs::read(&app.db.url).unwrap();
            if let Ok(wal) = std::fs::read(format!("{}-wal", app.db.url)) {
                bytes.extend(wal);
            }
            bytes
        }
        Backend::Postgres => {
            let out = std::process::Command::new("pg_dump")
                .arg("--dbname")
                .arg(&app.db.url)
                .output()
                .expect("pg_dump (Debian postgresql-client) runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn identity_data_is_sealed_in_the_database_and_its_dump(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let dewi = Registration {
        email: "dewi.lestari@example.com".into(),
        full_name: "Dewi Lestari".into(),
        nik: "3201015708950002".into(),
        phone: "0857-1234-9876".into(),
        ..Default::default()
    };
    app.register(&mut Registration::default()).await;
    app.register_and_verify(&mut Registration::budi()).await;
    app.register(&mut dewi.clone()).await;
    // A failure with Dewi's address in the failure log (a mistyped phone,
    // three times), found by staff through the address's index.
    let stuck = app
        .register_stuck(&mut Registration {
            phone: "021".into(),
            photo: None,
            ..dewi.clone()
        })
        .await
        .text()
        .await
        .unwrap();
    let reference = crate::helpers::reference_code(&stuck).expect("a reference code");
    {
        let mut conn = app.state.pool.get().unwrap();
        let found = emeterai::db::staff::page(
            &mut conn,
            &app.state.keys,
            &emeterai::db::staff::FailureFilter {
                email: Some(dewi.email.clone()),
                ..Default::default()
            },
            None,
            10,
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].reference, reference);
        assert_eq!(found[0].email.as_deref(), Some(dewi.email.as_str()));
    }
    // Every mail delivered (a sent mail keeps no address or body).
    for address in ["siti.aminah@example.co.id", "dewi.lestari@example.com"] {
        app.wait_for_mail(address, 1).await;
    }
    let photos = stored_photos(&app);
    assert_eq!(photos.len(), 3);
    // Each citizen is still found and opened by the portal.
    {
        let mut conn = app.state.pool.get().unwrap();
        let found =
            emeterai::db::registrations::find_by_email(&mut conn, &app.state.keys, &dewi.email)
                .unwrap()
                .unwrap();
        assert_eq!(found.full_name, "Dewi Lestari");
        assert_eq!(found.phone, "+6285712349876");
        let account =
            emeterai::db::accounts::find_by_nik(&mut conn, &app.state.keys, "3201011708900003")
                .unwrap()
                .unwrap();
        assert_eq!(account.email, "budi@example.com");
    }
    // The outbox writes what it sent right after the provider answered.
    for _ in 0..250 {
        let waiting: i64 = {
            let mut conn = app.state.pool.get().unwrap();
            emeterai::schema::mail_outbox::table
                .filter(emeterai::schema::mail_outbox::sealed.is_not_null())
                .count()
                .get_result(&mut *conn)
                .unwrap()
        };
        if waiting == 0 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let copy = database_copy(&app, backend);
    for identity in [
        "3578015708950001",
        "3201011708900003",
        "3201015708950002",
        "Siti Aminah",
        "Budi Santoso",
        "Dewi Lestari",
        "siti.aminah@example.co.id",
        "budi@example.com",
        "dewi.lestari@example.com",
        "6281234567890",
        "6281311112222",
        "6285712349876",
        "1995-08-17",
        "1990-08-17",
    ] {
        assert!(
            !contains(&copy, identity.as_bytes()),
            "{identity} is in the copy of the database"
        );
    }
    assert!(copy.len() > 10_000, "the copy holds the rows");
    for (id, stored, key) in &photos {
        assert!(emeterai::domain::sealed::is_sealed(stored), "{id} in clear");
        assert!(key.is_some(), "{id} names no data key");
        let photo = opened(&app, id).unwrap();
        assert_eq!(&photo[..3], b"\xFF\xD8\xFF", "{id} opens to a JPEG");
        // No piece of the photo is in the copy, raw (SQLite) or as the
        // hex of a bytea (pg_dump).
        for at in [64, photo.len() / 2, photo.len() - 96] {
            let piece = &photo[at..at + 32];
            assert!(
                !contains(&copy, piece),
                "{id}: photo bytes at {at} in the copy"
            );
            assert!(
                !contains(&copy, hex::encode(piece).as_bytes()),
                "{id}: as hex"
            );
        }
    }
    assert!(!contains(&copy, b"JFIF"), "no JPEG header in the copy");
}

async fn a_sealed_photo_moved_to_another_row_does_not_open(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    app.register(&mut Registration::budi()).await;
    let photos = stored_photos(&app);
    let ((first, first_data, _), (second, _, _)) = (&photos[0], &photos[1]);
    {
        let mut conn = app.state.pool.get().unwrap();
        diesel::update(ktp_uploads::table.find(second))
            .set(ktp_uploads::data.eq(first_data))
            .execute(&mut *conn)
            .unwrap();
    }
    assert!(opened(&app, first).is_ok());
    let moved = opened(&app, second).unwrap_err();
    assert!(
        matches!(moved, emeterai::error::AppError::Unavailable(_)),
        "{moved:?}"
    );
    // One changed byte does not open either.
    let mut altered = first_data.clone();
    *altered.last_mut().unwrap() ^= 1;
    {
        let mut conn = app.state.pool.get().unwrap();
        diesel::update(ktp_uploads::table.find(first))
            .set(ktp_uploads::data.eq(&altered))
            .execute(&mut *conn)
            .unwrap();
    }
    assert!(opened(&app, first).is_err());
}

/// A citizen whose sealed data does not open (altered in the database)
/// gets the 503 page with the contact channels and a reference code, not
/// garbage and not a 500.
async fn a_value_that_does_not_open_is_a_clear_503_page(backend: Backend) {
    use emeterai::schema::registrations;
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    let mails = app.wait_for_mail("siti.aminah@example.co.id", 1).await;
    let link = crate::mail_stub::verification_path(&mails[0]);
    assert_eq!(app.get_html(&link).await.0, 200);
    {
        let mut conn = app.state.pool.get().unwrap();
        let mut stored: Vec<u8> = registrations::table
            .select(registrations::sealed.assume_not_null())
            .first(&mut *conn)
            .unwrap();
        *stored.last_mut().unwrap() ^= 1;
        diesel::update(registrations::table)
            .set(registrations::sealed.eq(stored))
            .execute(&mut *conn)
            .unwrap();
    }
    let (status, html) = app.get_html(&link).await;
    assert_eq!(status, 503, "{html}");
    assert!(html.contains("1500 159"), "{html}");
    assert!(crate::helpers::reference_code(&html).is_some(), "{html}");
    assert!(!html.contains("Siti"), "no data shown");
}

async fn photos_stored_in_clear_are_sealed_after_the_upgrade(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let photo = crate::helpers::ktp_jpeg();
    {
        let mut conn = app.state.pool.get().unwrap();
        // Back to the schema before sealing, where a photo is stored in
        // clear, then forward again.
        loop {
            let reverted = match &mut *conn {
                DbConn::Sqlite(c) => {
                    use diesel_migrations::MigrationHarness;
                    c.revert_last_migration(emeterai::db::SQLITE_MIGRATIONS)
                        .map(|v| v.to_string())
                }
                DbConn::Postgres(c) => {
                    use diesel_migrations::MigrationHarness;
                    c.revert_last_migration(emeterai::db::POSTGRES_MIGRATIONS)
                        .map(|v| v.to_string())
                }
            }
            .unwrap();
            assert!(reverted.as_str() >= "20261202000009", "{reverted}");
            if reverted.contains("000009") {
                break;
            }
        }
        let now = app.state.clock.now().format("%Y-%m-%d %H:%M:%S");
        let data = match backend {
            Backend::Sqlite => format!("X'{}'", hex::encode(&photo)),
            Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(&photo)),
        };
        conn.batch_execute(&format!(
            "INSERT INTO ktp_uploads (id, file_name, content_type, size_bytes, data, created_at)
               VALUES ('00000000-0000-4000-8000-00000000000a', 'lama.jpg', 'image/jpeg', {}, {data}, '{now}');",
            photo.len()
        ))
        .unwrap();
    }
    emeterai::db::migrate(&app.state.pool).unwrap();
    let id = "00000000-0000-4000-8000-00000000000a";
    // Readable at once, in clear until a background batch seals it.
    assert_eq!(opened(&app, id).unwrap(), photo);
    let progress = emeterai::services::keys::maintain(&app.state.services())
        .await
        .unwrap();
    // (The worker's own batch may have sealed it first.)
    assert_eq!(progress.in_clear, 0);
    let (_, stored, key) = stored_photos(&app).pop().unwrap();
    assert!(emeterai::domain::sealed::is_sealed(&stored));
    assert!(key.is_some());
    assert_eq!(opened(&app, id).unwrap(), photo, "the same photo, sealed");
    // Nothing left: a second round does nothing.
    let again = emeterai::services::keys::maintain(&app.state.services())
        .await
        .unwrap();
    assert_eq!(again.sealed, 0);
}

/// Reverts migrations down to (and including) `version`.
fn revert_to(conn: &mut DbConn, version: &str) {
    use diesel_migrations::MigrationHarness;
    loop {
        let reverted = match conn {
            DbConn::Sqlite(c) => c
                .revert_last_migration(emeterai::db::SQLITE_MIGRATIONS)
                .map(|v| v.to_string()),
            DbConn::Postgres(c) => c
                .revert_last_migration(emeterai::db::POSTGRES_MIGRATIONS)
                .map(|v| v.to_string()),
        }
        .unwrap();
        assert!(reverted.as_str() >= version, "{reverted}");
        if reverted.contains(version) {
            return;
        }
    }
}

async fn identities_stored_in_clear_are_sealed_after_the_upgrade(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // A verified account and a waiting registration, as the previous
    // version stored them: in clear.
    app.register_and_verify(&mut Registration::budi()).await;
    {
        let mut conn = app.state.pool.get().unwrap();
        revert_to(&mut conn, "20261202000010");
        let now = app.state.clock.now().format("%Y-%m-%d %H:%M:%S");
        conn.batch_execute(&format!(
            "UPDATE accounts SET email = 'budi@example.com', nik = '3201011708900003',
               full_name = 'Budi Santoso', birth_date = '1990-08-17', phone = '+6281311112222';
             INSERT INTO registrations (id, email, nik, full_name, birth_date, phone,
               ktp_upload_id, lang, created_at, updated_at)
               VALUES ('r-lama', 'siti.aminah@example.co.id', '3578015708950001', 'Siti Aminah',
               '1995-08-17', '+6281234567890', (SELECT ktp_upload_id FROM accounts), 'id',
               '{now}', '{now}');"
        ))
        .unwrap();
    }
    emeterai::db::migrate(&app.state.pool).unwrap();
    {
        // A failure row and two mails written by a version that kept the
        // address in clear: one mail sent, one waiting (due later, so the
        // worker leaves it be).
        let mut conn = app.state.pool.get().unwrap();
        let now = app.state.clock.now();
        let later = (now + chrono::Duration::days(1)).format("%Y-%m-%d %H:%M:%S");
        let now = now.format("%Y-%m-%d %H:%M:%S");
        conn.batch_execute(&format!(
            "INSERT INTO failures (reference, occurred_at, reason, fields, email, path)
               VALUES ('E-LAMA-01', '{now}', 'email_taken', '', 'siti.lama@example.net', '/register');
             INSERT INTO mail_outbox (id, kind, to_address, subject, text_body, html_body, status,
               attempts, next_attempt_at, created_at, sent_at)
               VALUES ('m-lama-sent', 'verify', 'siti.lama@example.net', 'Verifikasi',
                 'Halo Siti Lama', '<p>Halo Siti Lama</p>', 'sent', 1, '{now}', '{now}', '{now}'),
               ('m-lama-wait', 'verify', 'siti.lama@example.net', 'Verifikasi',
                 'Halo Siti Lama', '<p>Halo Siti Lama</p>', 'pending', 0, '{later}', '{now}', NULL);"
        ))
        .unwrap();
    }
    let read_logs = |app: &TestApp| {
        let mut conn = app.state.pool.get().unwrap();
        let keys = &app.state.keys;
        let failures =
            emeterai::db::staff::related(&mut conn, keys, Some("siti.lama@example.net"), None, 10)
                .unwrap();
        let mut mails: Vec<(String, String, String)> =
            emeterai::db::outbox::mails_to(&mut conn, keys, "siti.lama@example.net")
                .unwrap()
                .into_iter()
                .map(|m| {
                    let m = m.opened(&mut conn, keys).unwrap();
                    (m.id, m.to_address, m.text_body)
                })
                .collect();
        mails.sort();
        (
            failures
                .into_iter()
                .map(|f| (f.reference, f.email))
                .collect::<Vec<_>>(),
            mails,
        )
    };
    let logs_before = read_logs(&app);
    assert_eq!(
        logs_before.0,
        vec![(
            "E-LAMA-01".to_string(),
            Some("siti.lama@example.net".to_string())
        )],
        "staff find the clear failure row by its address"
    );
    assert_eq!(logs_before.1.len(), 2);
    let read = |app: &TestApp| {
        let mut conn = app.state.pool.get().unwrap();
        let keys = &app.state.keys;
        let account = emeterai::db::accounts::find_by_email(&mut conn, keys, "budi@example.com")
            .unwrap()
            .expect("the account is found by its address");
        let waiting = emeterai::db::registrations::find_by_email(
            &mut conn,
            keys,
            "siti.aminah@example.co.id",
        )
        .unwrap()
        .expect("the registration is found by its address");
        (
            account.full_name,
            account.nik,
            waiting.full_name,
            waiting.phone,
        )
    };
    let before = read(&app);
    assert_eq!(before.0, "Budi Santoso");
    loop {
        let progress = emeterai::services::keys::maintain(&app.state.services())
            .await
            .unwrap();
        if progress.in_clear == 0 {
            break;
        }
    }
    assert_eq!(read(&app), before, "the same data, sealed");
    let logs_after = read_logs(&app);
    assert_eq!(
        logs_after.0, logs_before.0,
        "the failure row, sealed, found alike"
    );
    assert_eq!(
        logs_after.1,
        vec![
            (
                "m-lama-sent".to_string(),
                emeterai::db::identity::email_index(&app.state.keys, "siti.lama@example.net"),
                String::new()
            ),
            (
                "m-lama-wait".to_string(),
                "siti.lama@example.net".to_string(),
                "Halo Siti Lama".to_string()
            ),
        ],
        "the waiting mail keeps its text (sealed); the sent one keeps nothing"
    );
    // What `emeterai keys seal-existing` ends with: the clear versions of
    // the rows leave free pages, the write-ahead log and dead tuples.
    {
        let mut conn = app.state.pool.get().unwrap();
        emeterai::db::keys::compact(&mut conn).unwrap();
    }
    let copy = database_copy(&app, backend);
    for identity in [
        "Budi Santoso",
        "Siti Aminah",
        "siti.lama@example.net",
        "Halo Siti Lama",
        "3201011708900003",
        "6281234567890",
    ] {
        assert!(
            !contains(&copy, identity.as_bytes()),
            "{identity} left in clear"
        );
    }
    // Signing in still works with the sealed account.
    let response = app
        .login("budi@example.com", &Registration::budi().password)
        .await;
    assert_eq!(response.status(), 303);
}

async fn rotation_rewraps_every_data_key_running_instances_follow_and_old_versions_retire(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys.txt");
    std::fs::write(
        &key_file,
        emeterai::domain::sealed::KeyRing::new_file_text(),
    )
    .unwrap();
    let with_keys = |path: std::path::PathBuf| {
        move |s: &mut emeterai::config::Settings| s.key_file = Some(path)
    };
    let Some(first) = TestApp::spawn_with(backend, with_keys(key_file.clone())).await else {
        return;
    };
    first.register(&mut Registration::default()).await;
    first.register(&mut Registration::budi()).await;
    // `emeterai keys rotate` adds version 2; an instance started afterwards
    // wraps new data keys under it.
    let (version, line) = first.state.keys.next_version_line();
    assert_eq!(version, 2);
    let text = std::fs::read_to_string(&key_file).unwrap();
    std::fs::write(&key_file, format!("{text}{line}")).unwrap();
    let second = TestApp::spawn_on(first.db.share(), with_keys(key_file.clone()))
        .await
        .unwrap();
    second
        .register(&mut Registration {
            email: "dewi@example.com".into(),
            nik: "3201015708950002".into(),
            ..Default::default()
        })
        .await;
    let by_version = |app: &TestApp| {
        let mut conn = app.state.pool.get().unwrap();
        emeterai::db::keys::count_by_version(&mut conn).unwrap()
    };
    // The first instance, started before the rotation, opens what was
    // sealed under version 2 without a restart: it reads the key file
    // again when a data key names a version it does not know.
    assert_eq!(first.state.keys.versions(), [1]);
    for (id, _, _) in stored_photos(&first) {
        assert!(opened(&first, &id).is_ok(), "{id}");
    }
    assert_eq!(first.state.keys.versions(), [1, 2]);
    assert_eq!(first.state.keys.newest(), 2, "and seals new data under it");
    // The new data key is under version 2; the two older ones are
    // re-wrapped by the batch (the second instance's worker runs it too).
    emeterai::services::keys::maintain(&second.state.services())
        .await
        .unwrap();
    // Three photos, three registrations (and no mail key left: all sent).
    let after = by_version(&second);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].0, 2);
    // Version 1 retired from the key file: every photo still opens.
    let retired: String = std::fs::read_to_string(&key_file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("kek 1 "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&key_file, retired).unwrap();
    let third = TestApp::spawn_on(first.db.share(), with_keys(key_file.clone()))
        .await
        .unwrap();
    assert_eq!(third.state.keys.versions(), [2]);
    for (id, _, _) in stored_photos(&third) {
        assert!(opened(&third, &id).is_ok(), "{id}");
    }
    // A running instance drops the retired version when its worker reads
    // the file again (once a minute).
    assert_eq!(first.state.keys.refresh(), Ok(true));
    assert_eq!(first.state.keys.versions(), [2]);
    // An instance whose key file knows only version 1 (a stale copy)
    // cannot open them: a clear error (503), not garbage.
    let stale = dir.path().join("stale-keys.txt");
    std::fs::write(&stale, &text).unwrap();
    let fourth = TestApp::spawn_on(first.db.share(), with_keys(stale))
        .await
        .unwrap();
    assert_eq!(fourth.state.keys.versions(), [1]);
    let (id, _, _) = stored_photos(&fourth).remove(0);
    assert!(matches!(
        opened(&fourth, &id),
        Err(emeterai::error::AppError::Unavailable(_))
    ));
}

async fn a_purged_photo_is_shredded(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register(&mut Registration::default()).await;
    let (id, _, key) = stored_photos(&app).remove(0);
    let key = key.unwrap();
    // The registration waits past its lifetime (7 days) and is purged.
    app.state.clock.advance(chrono::Duration::days(8));
    emeterai::services::retention::purge_expired(&app.state.services(), app.state.clock.now())
        .await
        .unwrap();
    let mut conn = app.state.pool.get().unwrap();
    let photos: i64 = ktp_uploads::table
        .filter(ktp_uploads::id.eq(&id))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    let keys: i64 = data_keys::table
        .filter(data_keys::id.eq(&key))
        .count()
        .get_result(&mut *conn)
        .unwrap();
    assert_eq!(
        (photos, keys),
        (0, 0),
        "the photo and its data key are gone"
    );
}

on_both_backends!(
    identity_data_is_sealed_in_the_database_and_its_dump,
    a_sealed_photo_moved_to_another_row_does_not_open,
    a_value_that_does_not_open_is_a_clear_503_page,
    photos_stored_in_clear_are_sealed_after_the_upgrade,
    identities_stored_in_clear_are_sealed_after_the_upgrade,
    rotation_rewraps_every_data_key_running_instances_follow_and_old_versions_retire,
    a_purged_photo_is_shredded,
);
