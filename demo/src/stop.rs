//! Why the world should stop: SIGTERM, SIGINT, SIGHUP or the end of stdin (the parent closed our pipe or
//! went away). Listening starts before anything is created, so a request during start-up is not lost.

use std::io::Read;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// The first stop request, once there is one.
pub struct StopRequests {
    rx: watch::Receiver<Option<&'static str>>,
}

impl StopRequests {
    /// Installs the signal handlers and the stdin watcher. Call inside the tokio runtime.
    pub fn listen() -> std::io::Result<StopRequests> {
        let (tx, rx) = watch::channel(None);
        let tx = Arc::new(tx);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let signals_tx = Arc::clone(&tx);
        tokio::spawn(async move {
            let reason = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => "SIGHUP",
            };
            request(&signals_tx, reason);
        });
        // A plain thread, not tokio's stdin: a blocked tokio stdin read would hold up runtime shutdown.
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 512];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            request(&tx, "stdin closed");
        });
        Ok(StopRequests { rx })
    }

    /// The reason, if a stop was requested already.
    pub fn requested(&self) -> Option<&'static str> {
        *self.rx.borrow()
    }

    /// Waits for the first stop request and returns its reason.
    pub async fn wait(&mut self) -> &'static str {
        match self.rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.unwrap_or("stop requested"),
            // Every sender is gone: nothing can ask any more, so stop now rather than hang.
            Err(_) => "stop listeners ended",
        }
    }
}

fn request(tx: &watch::Sender<Option<&'static str>>, reason: &'static str) {
    tx.send_if_modified(|current| {
        if current.is_none() {
            *current = Some(reason);
            true
        } else {
            false
        }
    });
}
