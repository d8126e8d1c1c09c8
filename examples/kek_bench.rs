//! Key-encryption key benchmark: data keys wrapped and unwrapped per
//! second with the KEK in the key file, and in a PKCS#11 token (SoftHSM2)
//! without and with the in-memory cache of unwrapped keys.
//!
//!   apt-get install softhsm2
//!   cargo run --release --example kek_bench
//!
//! It makes its own SoftHSM2 token in a temporary directory. Options:
//! --keys N (default 2000), --module PATH (default SoftHSM2's).

use std::time::Instant;

use emeterai::domain::sealed::KeyRing;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Wraps `n` data keys, then unwraps each twice (the second time is what
/// a registration read again within the cache's lifetime costs).
fn measure(name: &str, ring: &KeyRing, n: usize) {
    let started = Instant::now();
    let wrapped: Vec<_> = (0..n).map(|_| ring.new_data_key().unwrap().0).collect();
    let wrap = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for key in &wrapped {
        ring.unwrap(key).unwrap();
    }
    let first = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for key in &wrapped {
        ring.unwrap(key).unwrap();
    }
    let again = n as f64 / started.elapsed().as_secs_f64();
    println!("| {name} | {wrap:.0} | {first:.0} | {again:.0} |");
}

fn main() {
    let n: usize = arg("--keys").map_or(2000, |v| v.parse().unwrap());
    let module = arg("--module").unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into());
    println!("| KEK | wraps/s | unwraps/s (first) | unwraps/s (again, within 5 min) |");
    println!("|---|---|---|---|");
    let file = KeyRing::parse(&KeyRing::new_file_text()).unwrap();
    measure("key file", &file, n);

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
    // Read by SoftHSM2 when the module is initialised (below, once).
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
    let status = std::process::Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "bench"])
        .args(["--pin", "246810", "--so-pin", "13579111"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("softhsm2-util (apt-get install softhsm2)");
    assert!(status.success());
    let config = emeterai::pkcs11::TokenConfig {
        module: module.into(),
        token: "bench".into(),
        pin: "246810".into(),
    };
    let token = emeterai::pkcs11::Token::open(&config).unwrap();
    token.generate_key("kek-1").unwrap();
    let text = format!("kek 1 pkcs11:kek-1\nindex {}\n", "ab".repeat(32));
    let ring = KeyRing::parse_with(&text, &mut |label| token.key(label)).unwrap();
    measure("SoftHSM2 (PKCS#11)", &ring, n);
}
