//! The key-encryption key in a PKCS#11 token (SoftHSM2, Debian `softhsm2`,
//! which `.ci/run` installs): data keys are wrapped and unwrapped inside
//! the token, the portal runs on it end to end, rotation makes the next
//! version in the token, and a wrong PIN stops start-up naming the setting.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::helpers::{Backend, Registration, TestApp};
use crate::on_both_backends;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "246810";
const TOKEN: &str = "emeterai-test";
const ROTATION_TOKENS: [&str; 2] = ["emeterai-rot-sqlite", "emeterai-rot-postgres"];

/// SoftHSM2's configuration for this test process: one token, made before
/// the module is first initialised (it lists tokens then); each test makes
/// keys of its own in it. `None` where SoftHSM2 is not installed, outside
/// CI.
fn softhsm() -> Option<&'static Path> {
    static CONF: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    CONF.get_or_init(|| {
        if !Path::new(MODULE).exists() {
            if std::env::var_os("CI").is_some() {
                panic!("SoftHSM2 ({MODULE}) must be installed in CI: apt-get install softhsm2");
            }
            eprintln!("skipped: SoftHSM2 is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        new_token(&conf, TOKEN);
        // Tokens of their own for the command-line rotation (its versions'
        // labels are fixed), one per backend: SoftHSM2 lists tokens once,
        // when this process first opens the module, so they are made now.
        for backend in ROTATION_TOKENS {
            new_token(&conf, backend);
        }
        // SoftHSM2 reads it when the module is initialised, once per
        // process; set before any test opens the module.
        unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
        Some((dir, conf))
    })
    .as_ref()
    .map(|(_, conf)| conf.as_path())
}

/// A fresh token labelled `label`, its user PIN set.
fn new_token(conf: &Path, label: &str) {
    let out = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args(["--init-token", "--free", "--label", label])
        .args(["--pin", PIN, "--so-pin", "13579111"])
        .output()
        .expect("softhsm2-util runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn token_config(label: &str) -> emeterai::pkcs11::TokenConfig {
    emeterai::pkcs11::TokenConfig {
        module: MODULE.into(),
        token: label.to_string(),
        pin: PIN.to_string(),
    }
}

async fn the_portal_runs_on_a_key_in_the_token(backend: Backend) {
    if softhsm().is_none() {
        return;
    }
    let label = format!("kek-{}", uuid::Uuid::new_v4().simple());
    let token = emeterai::pkcs11::Token::open(&token_config(TOKEN)).unwrap();
    token.generate_key(&label).unwrap();
    // The key cannot be made twice under one label.
    assert!(token.generate_key(&label).is_err());
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys.txt");
    let index = hex::encode([7u8; 32]);
    std::fs::write(&key_file, format!("kek 1 pkcs11:{label}\nindex {index}\n")).unwrap();
    let settings = {
        let key_file = key_file.clone();
        move |s: &mut emeterai::config::Settings| {
            s.key_file = Some(key_file);
            s.pkcs11_module = Some(MODULE.into());
            s.pkcs11_token = Some(TOKEN.into());
            s.pkcs11_pin = Some(PIN.into());
        }
    };
    let Some(app) = TestApp::spawn_with(backend, settings.clone()).await else {
        return;
    };
    assert!(app.state.keys.newest_in_token());
    // A whole sign-up: registered, mailed, password chosen, signed in.
    app.register_and_verify(&mut Registration::default()).await;
    {
        let mut conn = app.state.pool.get().unwrap();
        let account = emeterai::db::accounts::find_by_email(
            &mut conn,
            &app.state.keys,
            "siti.aminah@example.co.id",
        )
        .unwrap()
        .unwrap();
        assert_eq!(account.full_name, "Siti Aminah");
        let (_, photo) =
            emeterai::db::accounts::find_upload(&mut conn, &app.state.keys, &account.ktp_upload_id)
                .unwrap()
                .unwrap();
        assert_eq!(&photo[..3], b"\xFF\xD8\xFF");
        // Wrapped by the token: the key file's KEK alone (none: only a
        // label) opens nothing, and a ring without the token fails clearly.
        let keys = emeterai::db::keys::count_by_version(&mut conn).unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(
            emeterai::domain::sealed::KeyRing::parse(&std::fs::read_to_string(&key_file).unwrap())
                .is_err()
        );
    }
    // A second instance on the same database and token reads it all.
    let other = TestApp::spawn_on(app.db.share(), settings).await.unwrap();
    let response = other
        .login(
            "siti.aminah@example.co.id",
            &Registration::default().password,
        )
        .await;
    assert_eq!(response.status(), 303);
}

/// A wrong PIN stops start-up with one line naming the setting.
#[test]
fn a_wrong_pin_is_refused_at_start_up() {
    let Some(conf) = softhsm() else {
        return;
    };
    let label = TOKEN;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys.txt");
    std::fs::write(
        &key_file,
        format!(
            "kek 1 pkcs11:emeterai-kek-1\nindex {}\n",
            hex::encode([1u8; 32])
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emeterai"))
        .current_dir(dir.path())
        .env_clear()
        .env("SOFTHSM2_CONF", conf)
        .env("EMETERAI_BIND", "127.0.0.1:0")
        .env("EMETERAI_KEY_FILE", &key_file)
        .env("EMETERAI_PKCS11_MODULE", MODULE)
        .env("EMETERAI_PKCS11_TOKEN", label)
        .env("EMETERAI_PKCS11_PIN", "000000")
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.contains("EMETERAI_KEY_FILE"), "{stderr}");
    assert!(first.contains("EMETERAI_PKCS11_PIN"), "{stderr}");
    assert!(!stderr.contains("000000"), "the PIN is not printed");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `emeterai keys rotate|rewrap|status` as an operator runs them against a
/// token, beside a portal that keeps running: the new version is made in
/// the token, the data keys move to it, and the running portal follows.
async fn a_rotation_in_the_token_from_the_command_line(backend: Backend) {
    let Some(conf) = softhsm() else {
        return;
    };
    // A token of its own (made with the others): the versions' labels
    // (`emeterai-kek-N`) are fixed.
    let token = match backend {
        Backend::Sqlite => ROTATION_TOKENS[0],
        Backend::Postgres => ROTATION_TOKENS[1],
    }
    .to_string();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys.txt");
    std::fs::write(&key_file, format!("index {}\n", hex::encode([9u8; 32]))).unwrap();
    let Some(db) = crate::helpers::TestDb::new(backend) else {
        return;
    };
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_emeterai"))
            .current_dir(dir.path())
            .env_clear()
            .env("SOFTHSM2_CONF", conf)
            .env("DATABASE_URL", &db.url)
            .env("EMETERAI_KEY_FILE", &key_file)
            .env("EMETERAI_PKCS11_MODULE", MODULE)
            .env("EMETERAI_PKCS11_TOKEN", &token)
            .env("EMETERAI_PKCS11_PIN", PIN)
            .arg("keys")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "keys {args:?}: {stdout}{stderr}");
        stdout
    };
    // The first version, made in the token, before the portal starts.
    cli(&["rotate"]);
    let settings = {
        let key_file = key_file.clone();
        let token = token.clone();
        move |s: &mut emeterai::config::Settings| {
            s.key_file = Some(key_file);
            s.pkcs11_module = Some(MODULE.into());
            s.pkcs11_token = Some(token);
            s.pkcs11_pin = Some(PIN.into());
        }
    };
    let app = TestApp::spawn_on(db.share(), settings).await.unwrap();
    app.register_and_verify(&mut Registration::default()).await;
    // Version 2, in the token; the data keys re-wrapped from the command
    // line while the portal runs.
    cli(&["rotate"]);
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert!(text.contains("kek 1 pkcs11:emeterai-kek-1\n"), "{text}");
    assert!(text.contains("kek 2 pkcs11:emeterai-kek-2\n"), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("kek") && l.len() > 40),
        "no key in the file: {text}"
    );
    let rewrap = cli(&["rewrap"]);
    assert!(rewrap.contains("under version 2"), "{rewrap}");
    let status = cli(&["status"]);
    assert!(!status.contains("version 1:"), "{status}");
    assert!(status.contains("newest 2"), "{status}");
    {
        let mut conn = app.state.pool.get().unwrap();
        let by_version = emeterai::db::keys::count_by_version(&mut conn).unwrap();
        assert_eq!(by_version.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [2]);
    }
    // The portal, started on version 1 only, signs the citizen in (it opens
    // the account under version 2, reading the key file again).
    assert_eq!(app.state.keys.versions(), [1]);
    let response = app
        .login(
            "siti.aminah@example.co.id",
            &Registration::default().password,
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(app.state.keys.versions(), [1, 2]);
}

on_both_backends!(
    the_portal_runs_on_a_key_in_the_token,
    a_rotation_in_the_token_from_the_command_line
);
