//! Page benchmark: how close `GET /register` (session cookie, CSRF token,
//! signed submission id, template, gzip) comes to `GET /healthz` (nothing
//! at all) on one core, and the server's memory with many connections open.
//!
//! The release binary is started as a child process pinned to CPU 0 with one
//! worker; this program pins itself to CPU 1 and speaks plain HTTP/1.1 over
//! loopback (a new connection per request, as the portal serves by default;
//! `Accept-Encoding: gzip` as browsers send it). Each new visitor gets a new
//! session, so every `/register` answer sets its cookie.
//!
//!   cargo build --release --bin emeterai --example page_bench
//!   target/release/examples/page_bench [--backend sqlite|postgres] [--secs 10] [--clients 32]
//!       [--connections 1000]
//!
//! Prints req/s for both paths and their ratio (target >= 0.75), then the
//! server's RSS with 1,000 connections (`--connections`) open at once, each
//! waiting in the middle of its request headers (target: the peak so far
//! <= 32 MiB), and its peak while as many clients load `/register` (shown,
//! no target). Exits non-zero when a target is missed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/mod.rs"]
mod support;
use support::{BenchDb, arg, report};

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn start_server(db: &BenchDb, port: u16) -> Child {
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("emeterai");
    Command::new("taskset")
        .args(["-c", "0"])
        .arg(&bin)
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("EMETERAI_DATA_DIR", db.dir.path())
        .env("EMETERAI_BIND", format!("127.0.0.1:{port}"))
        .env("EMETERAI_WORKERS", "1")
        .env("EMETERAI_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (build it: cargo build --release)", bin.display()))
}

/// The kernel's figure for a process: `VmRSS` (now) or `VmHWM` (peak), KiB.
fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One request on a new connection; whether it was answered 200.
async fn get(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: page_bench\r\n\
         Accept: text/html\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::with_capacity(8192);
    if stream.read_to_end(&mut answer).await.is_err() {
        return false;
    }
    answer.starts_with(b"HTTP/1.1 200")
}

/// Requests per second that `clients` loops reach on `path` in `secs`.
async fn rate(port: u16, path: &'static str, clients: usize, secs: f64) -> f64 {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            actix_web::rt::spawn(async move {
                let mut ok = 0usize;
                while Instant::now() < until {
                    if get(port, path).await {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[actix_web::main]
async fn main() {
    let backend = arg("--backend").unwrap_or_else(|| "sqlite".into());
    let secs: f64 = arg("--secs").map_or(10.0, |v| v.parse().unwrap());
    let clients: usize = arg("--clients").map_or(32, |v| v.parse().unwrap());
    let connections: usize = arg("--connections").map_or(1000, |v| v.parse().unwrap());
    pin_to(1);
    let db = BenchDb::new(&backend);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = start_server(&db, port);
    let pid = server.id();
    for _ in 0..100 {
        if get(port, "/healthz").await {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let idle = memory_kib(pid, "VmRSS");

    // Warm up both paths, then measure each in turn.
    rate(port, "/register", clients, 2.0).await;
    rate(port, "/healthz", clients, 2.0).await;
    let healthz = rate(port, "/healthz", clients, secs).await;
    let register = rate(port, "/register", clients, secs).await;
    let ratio = register / healthz;
    println!(
        "backend {backend}, server on CPU 0 (1 worker), load on CPU 1, {clients} clients, {secs} s each"
    );
    println!("GET /healthz:  {healthz:.0} req/s");
    println!("GET /register: {register:.0} req/s");
    println!("ratio: {ratio:.2}");

    let loaded = memory_kib(pid, "VmRSS");
    // Many connections open at once, each in the middle of its headers.
    let mut open = Vec::new();
    for _ in 0..connections {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
            let _ = stream
                .write_all(b"GET /register HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .await;
            open.push(stream);
        }
    }
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let with_open = memory_kib(pid, "VmRSS");
    let peak_open = memory_kib(pid, "VmHWM");
    let opened = open.len();
    drop(open);
    // As many clients loading the form at once.
    rate(port, "/register", connections, 5.0).await;
    let peak = memory_kib(pid, "VmHWM");
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "RSS: idle {:.1} MiB; after the rates {:.1} MiB; {opened} connections open {:.1} MiB \
         (peak so far {:.1} MiB); peak under {connections} busy clients {:.1} MiB",
        mib(idle),
        mib(loaded),
        mib(with_open),
        mib(peak_open),
        mib(peak)
    );
    let _ = server.kill();
    let _ = server.wait();
    let met = report(&[
        ("GET /register at >= 0.75 of GET /healthz", ratio >= 0.75),
        (
            "peak RSS with the connections open <= 32 MiB",
            peak_open <= 32 * 1024,
        ),
    ]);
    if !met {
        std::process::exit(1);
    }
}
