//! The spawner thread: the one thread that starts every instance process.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
//! not when the process does. Children are therefore forked from this single
//! thread, which lives as long as the supervisor, and never from a tokio
//! worker or blocking-pool thread that may be retired at any moment.

use std::io;
use std::sync::mpsc as std_mpsc;
use std::thread;

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

type Job = (Command, oneshot::Sender<io::Result<Child>>);

/// Sends commands to the spawner thread. The thread ends when the last
/// `Spawner` is dropped.
#[derive(Debug, Clone)]
pub struct Spawner {
    tx: std_mpsc::Sender<Job>,
}

impl Spawner {
    /// Starts the thread; children are registered with the runtime of `handle`.
    pub fn start(handle: tokio::runtime::Handle) -> io::Result<Self> {
        let (tx, rx) = std_mpsc::channel::<Job>();
        thread::Builder::new().name("mgr-spawner".into()).spawn(move || {
            let _runtime = handle.enter();
            while let Ok((mut command, reply)) = rx.recv() {
                let _ = reply.send(command.spawn());
            }
        })?;
        Ok(Spawner { tx })
    }

    pub async fn spawn(&self, command: Command) -> io::Result<Child> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((command, reply)).map_err(|_| io::Error::other("the spawner thread has stopped"))?;
        rx.await.map_err(|_| io::Error::other("the spawner thread has stopped"))?
    }
}
