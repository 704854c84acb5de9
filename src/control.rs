//! The control socket: how the CLI talks to the daemon.
//!
//! One JSON request line, one JSON response line. Who may ask is decided from
//! the caller's kernel credentials (SO_PEERCRED), not from file modes, so a
//! refused caller gets a message naming its uid and who is allowed instead of
//! a bare "permission denied" (the seed's daemon/CLI user-mismatch lesson).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::actor::Context;
use crate::status::{Status, StatusHub};

/// Longest request line accepted.
const MAX_REQUEST_BYTES: u64 = 4096;
/// Longest response accepted by the client.
const MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;
/// Per-connection time limit on both sides.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait.
const MAX_CONNECTIONS: usize = 16;

/// What the CLI asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// The full status snapshot.
    Status,
    /// Liveness only.
    Ping,
}

/// What the daemon answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was served.
    pub ok: bool,
    /// Why not, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The snapshot, for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<Status>>,
}

impl Response {
    fn refused(error: String) -> Self {
        Self {
            ok: false,
            error: Some(error),
            status: None,
        }
    }
}

/// Control socket failures, on either side.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No daemon listens at the path.
    #[error("the edgereach daemon is not running: nothing listens on {path} ({source}); start it with `edgereach run` or `systemctl start edgereach`")]
    NotRunning {
        /// Socket path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file system refused the connection.
    #[error("cannot connect to {path} as uid {uid}: {source}; run as root or as a member of the control group")]
    Denied {
        /// Socket path.
        path: String,
        /// Our uid.
        uid: u32,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The daemon refused or failed the request.
    #[error("the daemon refused: {0}")]
    Refused(String),
    /// Talking failed midway.
    #[error("control socket {path}: {what}")]
    Protocol {
        /// Socket path.
        path: String,
        /// What went wrong.
        what: String,
    },
    /// Setting up the listening socket failed.
    #[error("control socket {path}: {what}")]
    Listen {
        /// Socket path.
        path: String,
        /// What went wrong.
        what: String,
    },
}

/// Who may use the control socket.
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    /// The daemon's own uid (always allowed, as is root).
    pub daemon_uid: u32,
    /// Optional group allowed as well: (name, gid).
    pub group: Option<(String, u32)>,
}

/// A caller's kernel credentials.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// pid, when the kernel gave one.
    pub pid: Option<i32>,
}

impl AccessPolicy {
    /// Policy for the current process with an optional group name.
    pub fn for_current_process(group: Option<&str>) -> Result<Self, GroupError> {
        let group = match group {
            None => None,
            Some(name) => match nix::unistd::Group::from_name(name) {
                Ok(Some(g)) => Some((name.to_string(), g.gid.as_raw())),
                Ok(None) => return Err(GroupError::Missing(name.to_owned())),
                Err(source) => {
                    let name = name.to_owned();
                    return Err(GroupError::Lookup { name, source });
                }
            },
        };
        Ok(Self {
            daemon_uid: nix::unistd::geteuid().as_raw(),
            group,
        })
    }

    /// Ok, or the refusal naming the caller and who is allowed.
    pub fn check(&self, caller: &Caller) -> Result<(), Refusal> {
        if caller.uid == 0 || caller.uid == self.daemon_uid {
            return Ok(());
        }
        if let Some((_, gid)) = &self.group {
            let in_group = caller.gid == *gid
                || caller
                    .pid
                    .is_some_and(|pid| supplementary_groups(pid).contains(gid));
            if in_group {
                return Ok(());
            }
        }
        Err(self.refusal(caller))
    }

    fn refusal(&self, caller: &Caller) -> Refusal {
        let who = user_name(caller.uid)
            .map(|n| format!("uid {} ({n})", caller.uid))
            .unwrap_or_else(|| format!("uid {}", caller.uid));
        let daemon = user_name(self.daemon_uid)
            .map(|n| format!("uid {} ({n})", self.daemon_uid))
            .unwrap_or_else(|| format!("uid {}", self.daemon_uid));
        let mut allowed = format!("root and the daemon's own user, {daemon}");
        match &self.group {
            Some((name, gid)) => {
                allowed.push_str(&format!(", and members of group {name} (gid {gid})"))
            }
            None => allowed.push_str("; no control_group is configured"),
        }
        Refusal { who, allowed }
    }
}

/// `gateway.control_group` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// No such group on this system.
    #[error("control_group {0:?} does not exist")]
    Missing(String),
    /// The group database could not be read.
    #[error("cannot look up control_group {name:?}: {source}")]
    Lookup {
        /// The configured group.
        name: String,
        /// Why the lookup failed.
        source: nix::Error,
    },
}

/// A caller the control socket refuses, with who would be allowed: the
/// message a CLI run as the wrong user shows (the peer-credential error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{who} may not use this daemon's control socket; allowed: {allowed}. \
     Run the command as one of those, or set gateway.control_group and add the user to it"
)]
pub struct Refusal {
    /// The caller, `uid N (name)`.
    pub who: String,
    /// Who may connect, in words.
    pub allowed: String,
}

fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Supplementary groups of a live process, from /proc/PID/status.
fn supplementary_groups(pid: i32) -> Vec<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Bind the control socket at `path`, refusing to steal it from a live daemon.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let err = |what: String| ControlError::Listen {
        path: path.display().to_string(),
        what,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| err(format!("cannot create its directory: {e}")))?;
    }
    if path.exists() {
        if StdUnixStream::connect(path).is_ok() {
            return Err(err(
                "another edgereach daemon is already listening there".into()
            ));
        }
        std::fs::remove_file(path).map_err(|e| err(format!("cannot remove stale socket: {e}")))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| err(format!("cannot bind: {e}")))?;
    // Anyone may connect; SO_PEERCRED decides who is served, with a clear answer.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| err(format!("cannot set mode: {e}")))?;
    Ok(listener)
}

/// The control actor's links: its bound socket and who may use it.
pub struct Links {
    /// The bound control socket ([`bind`]).
    pub listener: UnixListener,
    /// Its path, removed at the end.
    pub path: PathBuf,
    /// Who is served (SO_PEERCRED).
    pub policy: AccessPolicy,
}

/// Serve requests until shutdown, then remove the socket file.
pub async fn run(ctx: Context, links: Links) {
    let Context {
        hub,
        stop: mut shutdown,
        ..
    } = ctx;
    let Links {
        listener,
        path,
        policy,
    } = links;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                // Back off so a persistent error (e.g. EMFILE) cannot spin.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let (policy, hub) = (policy.clone(), hub.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if tokio::time::timeout(IO_TIMEOUT, serve_one(stream, &policy, &hub))
                .await
                .is_err()
            {
                tracing::debug!("control connection timed out");
            }
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn serve_one(stream: UnixStream, policy: &AccessPolicy, hub: &StatusHub) {
    let caller = match stream.peer_cred() {
        Ok(c) => Caller {
            uid: c.uid(),
            gid: c.gid(),
            pid: c.pid(),
        },
        Err(e) => {
            tracing::warn!("control socket: cannot read peer credentials: {e}");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    let response = match policy.check(&caller) {
        Err(refusal) => {
            tracing::warn!(uid = caller.uid, "control socket: refused caller");
            Response::refused(refusal.to_string())
        }
        Ok(()) => {
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST_BYTES));
            match reader.read_line(&mut line).await {
                Ok(_) => answer(&line, hub),
                Err(e) => Response::refused(format!("cannot read request: {e}")),
            }
        }
    };
    if let Ok(mut bytes) = serde_json::to_vec(&response) {
        bytes.push(b'\n');
        let _ = write.write_all(&bytes).await;
        let _ = write.shutdown().await;
    }
}

fn answer(line: &str, hub: &StatusHub) -> Response {
    match serde_json::from_str::<Request>(line.trim()) {
        Ok(Request::Status) => Response {
            ok: true,
            error: None,
            status: Some(Box::new(hub.snapshot())),
        },
        Ok(Request::Ping) => Response {
            ok: true,
            error: None,
            status: None,
        },
        Err(e) => Response::refused(format!("bad request: {e}")),
    }
}

/// Send one request to the daemon at `path` (blocking, bounded in time and size).
pub fn request(path: &Path, req: &Request) -> Result<Response, ControlError> {
    let shown = path.display().to_string();
    let proto = |what: String| ControlError::Protocol {
        path: shown.clone(),
        what,
    };
    let stream = StdUnixStream::connect(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::PermissionDenied => ControlError::Denied {
            path: shown.clone(),
            uid: nix::unistd::geteuid().as_raw(),
            source,
        },
        _ => ControlError::NotRunning {
            path: shown.clone(),
            source,
        },
    })?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| proto(format!("cannot set timeouts: {e}")))?;
    let mut line = serde_json::to_string(req).map_err(|e| proto(e.to_string()))?;
    line.push('\n');
    // A refused caller may find the connection already answered and closed.
    let _ = (&stream).write_all(line.as_bytes());
    let mut reply = String::new();
    BufReader::new((&stream).take(MAX_RESPONSE_BYTES))
        .read_line(&mut reply)
        .map_err(|e| proto(format!("cannot read the answer: {e}")))?;
    let response: Response =
        serde_json::from_str(reply.trim()).map_err(|e| proto(format!("unreadable answer: {e}")))?;
    if !response.ok {
        return Err(ControlError::Refused(
            response.error.unwrap_or_else(|| "no reason given".into()),
        ));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_self_are_allowed() {
        let p = AccessPolicy {
            daemon_uid: 990,
            group: None,
        };
        assert!(p
            .check(&Caller {
                uid: 0,
                gid: 5,
                pid: None
            })
            .is_ok());
        assert!(p
            .check(&Caller {
                uid: 990,
                gid: 5,
                pid: None
            })
            .is_ok());
        let msg = p
            .check(&Caller {
                uid: 4242,
                gid: 4242,
                pid: None,
            })
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("uid 4242 may not use"), "{msg}");
        assert!(msg.contains("uid 990"), "{msg}");
        assert!(msg.contains("no control_group"), "{msg}");
    }

    #[test]
    fn group_members_are_allowed() {
        let p = AccessPolicy {
            daemon_uid: 0,
            group: Some(("edgereach".into(), 777)),
        };
        assert!(p
            .check(&Caller {
                uid: 1000,
                gid: 777,
                pid: None
            })
            .is_ok());
        let msg = p
            .check(&Caller {
                uid: 1000,
                gid: 1000,
                pid: None,
            })
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("members of group edgereach (gid 777)"),
            "{msg}"
        );
    }

    #[test]
    fn requests_are_tagged() {
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"cmd":"status"}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"rm -rf"}"#).is_err());
    }
}
