//! Tokio runtimes whose threads live in a network namespace, so the
//! clients' and the webhook receiver's sockets are made inside the test
//! network (a socket belongs to the namespace of the thread that created
//! it). Every worker and blocking thread enters the namespace when it
//! starts; a thread that could not is recorded, and [`NsRuntime::new`]
//! fails if its probe thread could not.

use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};

use nix::sched::{CloneFlags, setns};

/// `NsRuntime` is a multi-threaded runtime inside namespace `ns`.
#[derive(Debug)]
pub struct NsRuntime {
    /// The runtime.
    pub runtime: tokio::runtime::Runtime,
    errors: Arc<Mutex<Vec<String>>>,
}

/// Enters namespace `ns` (a name under `/run/netns`) on this thread.
pub fn enter(ns: &str) -> Result<(), String> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {path}: {e}"))
}

impl NsRuntime {
    /// `new` builds a runtime with `threads` workers in namespace `ns`.
    pub fn new(ns: &str, threads: usize) -> Result<NsRuntime, String> {
        // The probe: if this thread cannot enter, none can.
        let probe_ns = ns.to_string();
        std::thread::spawn(move || enter(&probe_ns))
            .join()
            .map_err(|_| "namespace probe thread panicked".to_string())??;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        let name = ns.to_string();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(format!("{ns}-rt"))
            .enable_all()
            .on_thread_start(move || {
                if let Err(e) = enter(&name) {
                    sink.lock().unwrap_or_else(PoisonError::into_inner).push(e);
                }
            })
            .build()
            .map_err(|e| e.to_string())?;
        Ok(NsRuntime { runtime, errors })
    }

    /// Errors of threads that could not enter the namespace (their sockets
    /// would be in the root namespace, where the blackhole route drops
    /// everything addressed to the test network).
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
