use tonic::{Code, Status, Streaming};

use crate::pb::{Server, TaskState, VmState, WatchServerRequest, WatchServerResponse};
use crate::{Client, Error};

/// Whether a server has settled: ACTIVE, ERROR or STOPPED with no task, or DELETED.
pub fn is_final(s: &Server) -> bool {
    match s.vm_state() {
        VmState::Deleted => true,
        VmState::Active | VmState::Error | VmState::Stopped => {
            s.task_state() == TaskState::Unspecified
        }
        _ => false,
    }
}

/// A server's changes and notifications until it settles; pull them with [`ServerWatch::next`].
///
/// It starts after `since_revision` (e.g. the revision CreateServer returned), so the changes
/// since then are replayed; 0 starts from the server as it is now. When the stream breaks
/// (UNAVAILABLE, a reset connection), it reopens from the last revision it saw, so no step is
/// lost or repeated.
pub struct ServerWatch {
    client: Client,
    id: String,
    last: i64,
    stream: Option<Streaming<WatchServerResponse>>,
    resumed: bool,
    seen: bool,
    failures: u32,
    resumes: u32,
    done: bool,
}

impl ServerWatch {
    pub(crate) fn new(client: Client, id: String, since_revision: i64) -> ServerWatch {
        ServerWatch {
            client,
            id,
            last: since_revision,
            stream: None,
            resumed: false,
            seen: false,
            failures: 0,
            resumes: 0,
            done: false,
        }
    }

    /// The next event; `None` once the server has settled (the last event is its final state).
    pub async fn next(&mut self) -> Option<Result<WatchServerResponse, Error>> {
        while !self.done {
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    let req = WatchServerRequest {
                        id: self.id.clone(),
                        follow: false,
                        since_revision: self.last,
                    };
                    self.resumed = self.last > 0;
                    match self.client.api().watch_server(req).await {
                        Ok(resp) => self.stream.insert(resp.into_inner()),
                        Err(status) => match self.recover(status).await {
                            Ok(()) => continue,
                            Err(e) => return Some(Err(e)),
                        },
                    }
                }
            };
            match stream.message().await {
                Ok(Some(ev)) => {
                    self.seen = true;
                    let revision = ev.server.as_ref().map_or(0, |s| s.revision);
                    // A reopened stream starts with the current state when the API no longer holds
                    // the changes: not news if this watch has already seen that revision.
                    if self.resumed && revision <= self.last && ev.notification.is_none() {
                        continue;
                    }
                    self.last = self.last.max(revision);
                    self.failures = 0;
                    return Some(Ok(ev));
                }
                Ok(None) => {
                    self.done = true;
                    if !self.seen {
                        return Some(Err(Error::local(
                            Code::Unavailable,
                            "watch ended before any event",
                        )));
                    }
                }
                Err(status) => {
                    self.stream = None;
                    if let Err(e) = self.recover(status).await {
                        return Some(Err(e));
                    }
                }
            }
        }
        None
    }

    /// How many times this watch has reopened its stream after it broke.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    /// Wait before reopening a broken stream, or give up with the error.
    async fn recover(&mut self, status: Status) -> Result<(), Error> {
        if !broken_stream(&status) || self.failures >= self.client.options.watch_resumes {
            self.done = true;
            return Err(status.into());
        }
        tokio::time::sleep(self.client.options.resume_backoff * 2u32.pow(self.failures)).await;
        self.failures += 1;
        self.resumes += 1;
        Ok(())
    }
}

/// UNAVAILABLE, or the transport failing under an open stream: hyper/h2 report a reset or
/// closed connection as UNKNOWN with the I/O error as its source.
fn broken_stream(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Internal | Code::Cancelled => {
            std::error::Error::source(status).is_some()
        }
        _ => false,
    }
}
