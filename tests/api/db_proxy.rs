//! A TCP proxy on loopback in front of PostgreSQL, on its own threads (like
//! a real server, it does not depend on the test's runtime). Stopping it is,
//! for the application, the database going away (new connections refused,
//! open ones cut); starting it again on the same port is the database
//! coming back.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct DbProxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    stopping: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<JoinHandle<()>>,
}

/// A listener with SO_REUSEADDR, so the same port can be taken again while
/// old connections linger in TIME_WAIT.
fn reusable_listener(addr: SocketAddr) -> TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    let listener = socket.listen(64).unwrap().into_std().unwrap();
    listener.set_nonblocking(true).unwrap();
    listener
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

impl DbProxy {
    pub async fn start(upstream: SocketAddr) -> DbProxy {
        Self::listen("127.0.0.1:0".parse().unwrap(), upstream)
    }

    fn listen(addr: SocketAddr, upstream: SocketAddr) -> DbProxy {
        let listener = reusable_listener(addr);
        let addr = listener.local_addr().unwrap();
        let stopping = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (flag, conns) = (stopping.clone(), open.clone());
        let acceptor = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        let mut conns = conns.lock().unwrap();
                        conns.push(client.try_clone().unwrap());
                        conns.push(server.try_clone().unwrap());
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pipe(server, client);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        DbProxy {
            addr,
            upstream,
            stopping,
            open,
            acceptor: Some(acceptor),
        }
    }

    /// The database goes away: no new connections, open ones cut.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// The database comes back on the same address.
    pub async fn restart(mut self) -> DbProxy {
        self.stop();
        Self::listen(self.addr, self.upstream)
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
