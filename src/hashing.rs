//! The password-hashing pool: bcrypt runs on a few threads of its own (one
//! per core by default), at the lowest CPU priority (nice 19), below the threads that
//! serve pages, so pages that need no hashing stay fast while it is busy.
//!
//! Work is *admitted*, never queued into a timeout: each class of work has a
//! short queue, and when it is full the request is refused at once (the
//! caller answers 503 with `Refresh`). The queue length comes from a
//! measurement: how many hashes the threads finish within the longest wait
//! we accept, timed at start-up with the configured cost.
//!
//! Sign-in has its own class: the threads take sign-ins and new passwords
//! in turn, so a flood of password choices cannot push sign-ins into long
//! waits (and the other way round), while either class alone uses every
//! thread.
//!
//! Hand-written rather than a crate: rayon and threadpool queue without
//! bound and have no notion of classes; this is a mutex, a condition
//! variable and two queues.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Kinds of hashing work, each with its own admission queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Checking a password at sign-in (citizens and staff).
    SignIn,
    /// Hashing a newly chosen password (verification link, reset).
    NewPassword,
}

impl Class {
    pub fn label(self) -> &'static str {
        match self {
            Class::SignIn => "sign_in",
            Class::NewPassword => "new_password",
        }
    }
}

/// The queue of a class is full: the caller should answer 503 at once.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("password hashing queue full ({0:?})")]
pub struct Full(pub Class);

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct Queues {
    sign_in: VecDeque<Job>,
    new_password: VecDeque<Job>,
    /// Which class goes first when both wait (alternates).
    sign_in_next: bool,
    stopping: bool,
}

impl Queues {
    fn queue(&mut self, class: Class) -> &mut VecDeque<Job> {
        match class {
            Class::SignIn => &mut self.sign_in,
            Class::NewPassword => &mut self.new_password,
        }
    }

    fn next_job(&mut self) -> Option<Job> {
        let order = if self.sign_in_next {
            [Class::SignIn, Class::NewPassword]
        } else {
            [Class::NewPassword, Class::SignIn]
        };
        for class in order {
            if let Some(job) = self.queue(class).pop_front() {
                self.sign_in_next = class == Class::NewPassword;
                return Some(job);
            }
        }
        None
    }
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

/// See the module documentation.
pub struct HashPool {
    shared: Arc<Shared>,
    threads: usize,
    queue_limit: usize,
}

impl HashPool {
    /// Starts `threads` hashing threads; each class may have `queue_limit`
    /// jobs waiting (besides those running).
    pub fn new(threads: usize, queue_limit: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
        });
        for n in 0..threads {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("bcrypt-{n}"))
                .spawn(move || worker(&shared));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a hashing thread");
            }
        }
        HashPool {
            shared,
            threads,
            queue_limit,
        }
    }

    /// The queue length for a measured hash time: the hashes `threads`
    /// finish within `max_wait`, at least one.
    pub fn queue_for(threads: usize, per_hash: Duration, max_wait: Duration) -> usize {
        let per_hash = per_hash.as_secs_f64().max(0.000_1);
        ((threads.max(1) as f64 * max_wait.as_secs_f64() / per_hash).floor() as usize).max(1)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn queue_limit(&self) -> usize {
        self.queue_limit
    }

    /// Jobs of `class` waiting for a thread now.
    pub fn waiting(&self, class: Class) -> usize {
        self.lock().queue(class).len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.shared
            .queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `work` on a hashing thread, or refuses at once when the class's
    /// queue is full. The answer arrives on the returned receiver.
    pub fn submit<T: Send + 'static>(
        &self,
        class: Class,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<tokio::sync::oneshot::Receiver<T>, Full> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        {
            let mut queues = self.lock();
            let queue = queues.queue(class);
            if queue.len() >= self.queue_limit {
                return Err(Full(class));
            }
            queue.push_back(job);
        }
        self.shared.ready.notify_one();
        Ok(rx)
    }
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.lock().stopping = true;
        self.shared.ready.notify_all();
    }
}

fn worker(shared: &Shared) {
    lower_priority();
    loop {
        let job = {
            let mut queues = shared
                .queues
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            loop {
                if let Some(job) = queues.next_job() {
                    break job;
                }
                if queues.stopping {
                    return;
                }
                queues = shared
                    .ready
                    .wait(queues)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        // A panic in one job must not take the thread (and its place) away.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

/// Nice 19 for this thread (Linux threads have their own nice value), so
/// the threads answering requests, and a PostgreSQL on the same machine,
/// win the CPU when they want it; hashing still gets every idle cycle.
/// (Measured: nice 10 left `GET /register` p99 at 16 ms next to a busy
/// PostgreSQL on two cores, nice 19 at 2.5 ms, at the same hash rate.)
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority only read their arguments; a failure
    // leaves the priority as it was, which is harmless.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn queue_length_follows_the_measurement() {
        let per_hash = Duration::from_millis(250);
        assert_eq!(HashPool::queue_for(2, per_hash, Duration::from_secs(2)), 16);
        assert_eq!(
            HashPool::queue_for(1, per_hash, Duration::from_millis(10)),
            1
        );
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_other_classes_still_get_in() {
        let pool = HashPool::new(1, 2);
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        // One job runs (blocked), two wait: the class is full.
        let mut receivers = Vec::new();
        for _ in 0..3 {
            let gate = gate.clone();
            receivers.push(
                pool.submit(Class::NewPassword, move || {
                    gate.lock().unwrap().recv().unwrap();
                    1
                })
                .unwrap(),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(matches!(
            pool.submit(Class::NewPassword, || 0),
            Err(Full(Class::NewPassword))
        ));
        // Sign-in has its own queue, and goes before the waiting jobs.
        let sign_in = pool.submit(Class::SignIn, || 2).unwrap();
        release.send(()).unwrap();
        assert_eq!(sign_in.blocking_recv().unwrap(), 2);
        release.send(()).unwrap();
        release.send(()).unwrap();
        for rx in receivers {
            assert_eq!(rx.blocking_recv().unwrap(), 1);
        }
        assert_eq!(pool.waiting(Class::NewPassword), 0);
    }
}
