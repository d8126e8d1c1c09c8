//! `emeterai backup` and `emeterai restore` on SQLite, while the portal
//! serves; on PostgreSQL they point at its own tools (the base backup and
//! WAL drill is `deploy/restore-drill.sh`).

use emeterai::db::DbUrl;
use emeterai::db::backup::{BackupError, backup, restore};

use crate::helpers::{Backend, Registration, TestApp, TestDb};
use crate::on_both_backends;

fn citizen(i: usize) -> Registration {
    Registration {
        email: format!("warga{i}@example.com"),
        nik: format!("357801570895{:04}", 10 + i),
        ..Registration::default()
    }
}

async fn a_backup_taken_while_serving_restores_everything_acknowledged(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let url = DbUrl::parse(&app.db.url).unwrap();
    let target = app.db.dir.path().join("backup.sqlite3");
    if backend == Backend::Postgres {
        let error = backup(&url, &target).unwrap_err();
        assert!(matches!(error, BackupError::Postgres));
        assert!(error.to_string().contains("pg_basebackup"), "{error}");
        return;
    }
    // Ten citizens acknowledged before the backup starts...
    for i in 0..10 {
        assert_eq!(app.register(&mut citizen(i)).await.status(), 303);
    }
    // ... and more signing up while it runs.
    let during = {
        let app = &app;
        let mut sign_ups = Vec::new();
        for i in 10..20 {
            sign_ups
                .push(async move { app.register_in(&app.new_browser(), &mut citizen(i)).await });
        }
        let backup_task = actix_web::rt::task::spawn_blocking({
            let (url, target) = (url.clone(), target.clone());
            move || backup(&url, &target)
        });
        let answers = futures_util::future::join_all(sign_ups).await;
        let held = backup_task.await.unwrap().expect("backup");
        for answer in answers {
            assert_eq!(answer.status(), 303);
        }
        held
    };
    assert!(during.registrations >= 10, "{during:?}");
    assert!(during.registrations <= 20);

    // The same name again is refused; so is a directory that is not there.
    let again = backup(&url, &target).unwrap_err();
    assert!(matches!(again, BackupError::TargetExists(_)), "{again}");
    let nowhere = backup(&url, &app.db.dir.path().join("no/such/dir/b.sqlite3")).unwrap_err();
    assert!(matches!(nowhere, BackupError::NoDirectory(_)), "{nowhere}");
    // A file system that takes no writes: a clear error, nothing left.
    let read_only =
        backup(&url, std::path::Path::new("/proc/emeterai-backup.sqlite3")).unwrap_err();
    assert!(
        matches!(read_only, BackupError::Write { .. }),
        "{read_only}"
    );

    // Restoring over the serving database, which holds registrations, is refused.
    let over = restore(&url, &target).unwrap_err();
    assert!(matches!(over, BackupError::TargetNotEmpty { .. }), "{over}");
    assert!(over.to_string().contains("move that file aside"));
    // Not a database: refused.
    let junk = app.db.dir.path().join("junk.sqlite3");
    std::fs::write(&junk, b"not a database").unwrap();
    let into = DbUrl::parse(
        &app.db
            .dir
            .path()
            .join("restored.sqlite3")
            .display()
            .to_string(),
    )
    .unwrap();
    assert!(matches!(
        restore(&into, &junk).unwrap_err(),
        BackupError::NotABackup { .. }
    ));

    // Into a new place: every citizen acknowledged before it started is there,
    // and a portal started on it (with the same key file) knows them.
    let restored = restore(&into, &target).expect("restore");
    assert_eq!(restored, during_without_size(restored, during));
    let db = TestDb::new(Backend::Sqlite).unwrap();
    std::fs::copy(&app.db.key_file, &db.key_file).unwrap();
    let restored_path = match &into {
        DbUrl::Sqlite(path) => path.display().to_string(),
        DbUrl::Postgres(_) => unreachable!(),
    };
    let second = TestApp::spawn_on(db, |s| s.database_url = restored_path)
        .await
        .unwrap();
    assert_eq!(second.get("/readyz").await.status(), 200);
    for i in 0..10 {
        // Each is waiting for its link: the form says the address is taken
        // or mails the link again; never a new registration beside it.
        let response = second.register(&mut citizen(i)).await;
        assert_ne!(response.status(), 500);
    }
    let count = {
        use diesel::prelude::*;
        let mut conn = second.state.pool.get().unwrap();
        emeterai::schema::registrations::table
            .count()
            .get_result::<i64>(&mut *conn)
            .unwrap()
    };
    assert_eq!(count, during.registrations, "no citizen doubled or lost");
}

fn during_without_size(
    restored: emeterai::db::backup::Contents,
    during: emeterai::db::backup::Contents,
) -> emeterai::db::backup::Contents {
    emeterai::db::backup::Contents {
        bytes: restored.bytes,
        ..during
    }
}

on_both_backends!(a_backup_taken_while_serving_restores_everything_acknowledged);
