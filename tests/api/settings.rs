//! Start-up refuses malformed settings with one clear line naming the
//! setting, never a panic trace. These run the real binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `emeterai serve` in an empty directory with only these settings; a
/// server that starts anyway is stopped after ten seconds.
fn run(envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_emeterai"));
    command
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("EMETERAI_BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .arg("serve");
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("run emeterai");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_clear_refusal(envs: &[(&str, &str)], setting: &str) {
    let (code, stderr) = run(envs);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(setting),
        "stderr does not name {setting}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains(setting),
        "first line should name {setting}: {stderr}"
    );
}

#[test]
fn malformed_bind_address_is_refused() {
    assert_clear_refusal(&[("EMETERAI_BIND", "not-an-address")], "EMETERAI_BIND");
}

#[test]
fn malformed_number_is_refused() {
    assert_clear_refusal(
        &[("EMETERAI_BCRYPT_COST", "twelve")],
        "EMETERAI_BCRYPT_COST",
    );
    assert_clear_refusal(&[("EMETERAI_BCRYPT_COST", "3")], "EMETERAI_BCRYPT_COST");
}

#[test]
fn malformed_base_url_is_refused() {
    assert_clear_refusal(
        &[("EMETERAI_BASE_URL", "portal.example")],
        "EMETERAI_BASE_URL",
    );
}

#[test]
fn unknown_database_scheme_is_refused() {
    assert_clear_refusal(
        &[("DATABASE_URL", "mysql://root@localhost/x")],
        "DATABASE_URL",
    );
}

#[test]
fn production_without_secret_key_is_refused() {
    assert_clear_refusal(
        &[
            ("EMETERAI_ENV", "production"),
            ("EMETERAI_MAIL_API_URL", "http://127.0.0.1:9/send"),
        ],
        "EMETERAI_SECRET_KEY",
    );
}

/// Production never prints verification and reset links to the log.
#[test]
fn production_without_a_mail_transport_is_refused() {
    assert_clear_refusal(
        &[
            ("EMETERAI_ENV", "production"),
            (
                "EMETERAI_SECRET_KEY",
                "a production secret key of at least 32 characters",
            ),
        ],
        "EMETERAI_MAIL_API_URL",
    );
}

/// Production never seals citizens' data under a key made up on the spot;
/// a key file that is missing or malformed stops start-up naming it.
#[test]
fn a_missing_or_wrong_key_file_is_refused() {
    let production = [
        ("EMETERAI_ENV", "production"),
        (
            "EMETERAI_SECRET_KEY",
            "a production secret key of at least 32 characters",
        ),
        ("EMETERAI_MAIL_API_URL", "http://127.0.0.1:9/send"),
    ];
    assert_clear_refusal(&production, "EMETERAI_KEY_FILE");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.txt");
    assert_clear_refusal(
        &[("EMETERAI_KEY_FILE", missing.to_str().unwrap())],
        "EMETERAI_KEY_FILE",
    );
    let wrong = dir.path().join("keys.txt");
    std::fs::write(&wrong, "kek 1 not-hex\n").unwrap();
    assert_clear_refusal(
        &[("EMETERAI_KEY_FILE", wrong.to_str().unwrap())],
        "EMETERAI_KEY_FILE",
    );
}

#[test]
fn help_lists_every_setting() {
    let output = Command::new(env!("CARGO_BIN_EXE_emeterai"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for setting in [
        "DATABASE_URL",
        "EMETERAI_BIND",
        "EMETERAI_BASE_URL",
        "EMETERAI_MAIL_API_URL",
        "EMETERAI_MAIL_API_KEY",
        "EMETERAI_MAIL_FROM",
        "EMETERAI_KEY_FILE",
        "EMETERAI_BCRYPT_COST",
        "EMETERAI_SECRET_KEY",
        "EMETERAI_ENV",
        "EMETERAI_CONTACT_PHONE",
    ] {
        assert!(help.contains(setting), "--help misses {setting}");
    }
    assert!(help.contains("migrate"));
    assert!(help.contains("serve"));
}

#[test]
fn migrate_creates_the_sqlite_database_in_data() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_emeterai"))
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("EMETERAI_DATA_DIR")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("data/emeterai.sqlite3").exists());
}
