//! Machine-level state directory: atomic JSON files that survive power cuts.
//!
//! Writes go to a temporary file that is fsynced, renamed over the target and
//! followed by an fsync of the directory, so a reader sees either the old or the
//! new content, never a mix. A file that is corrupt anyway (disk trouble, a
//! hand edit) is renamed aside with one log line, never a crash loop.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{renameat, OFlag};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::safefs::{self, SafeError};

/// Largest state file read back; state files are small JSON documents.
pub const MAX_STATE_FILE_BYTES: u64 = 1024 * 1024;

/// A state directory problem, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Creating, reading or writing failed.
    #[error("state {path}: {action}: {source}")]
    Io {
        /// File or directory involved.
        path: String,
        /// What was being done.
        action: &'static str,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A symlink, another user's file or no regular file (names the path
    /// and the owner), or a system call on it failed.
    #[error("state {0}")]
    Unsafe(#[from] SafeError),
    /// A value could not be encoded.
    #[error("state {path}: cannot encode: {source}")]
    Encode {
        /// File involved.
        path: String,
        /// Underlying error.
        source: serde_json::Error,
    },
    /// A file name that would escape the directory.
    #[error("state file name {0:?} is not a plain file name")]
    BadName(String),
}

/// The daemon's machine-level state directory, held open: every file in it
/// is opened relative to this descriptor (see [`crate::safefs`]).
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
    fd: Arc<OwnedFd>,
}

impl StateDir {
    /// Open (creating with mode 0700 if needed) the directory at `path`,
    /// refusing a symlink or a directory another user owns, and remove
    /// temporary files a killed writer left behind.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let fd = safefs::open_dir(path)?;
        let dir = Self {
            path: path.to_path_buf(),
            fd: Arc::new(fd),
        };
        dir.remove_stale_temporaries();
        Ok(dir)
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Atomically replace `name` with `value` as JSON, mode 0600.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let target = self.file(name)?;
        let bytes = serde_json::to_vec_pretty(value).map_err(|source| StateError::Encode {
            path: target.display().to_string(),
            source,
        })?;
        self.write_bytes(name, &target, &bytes)
    }

    /// Read `name` as JSON. `Ok(None)` when it does not exist, or when it was
    /// corrupt: then it is renamed to `name.corrupt` and one warning is logged.
    /// A symlink or another user's file is an error, never read.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateError> {
        let target = self.file(name)?;
        let Some(bytes) = self.read_bytes(name, MAX_STATE_FILE_BYTES)? else {
            return Ok(None);
        };
        let parsed = match bytes {
            Ok(bytes) => serde_json::from_slice::<T>(&bytes).map_err(Unreadable::from),
            Err(why) => Err(why),
        };
        match parsed {
            Ok(v) => Ok(Some(v)),
            Err(why) => {
                let aside_name = format!("{name}.corrupt");
                let aside = self.path.join(&aside_name);
                renameat(self.fd.as_fd(), name, self.fd.as_fd(), aside_name.as_str()).map_err(
                    |e| StateError::Io {
                        path: target.display().to_string(),
                        action: "move corrupt file aside",
                        source: e.into(),
                    },
                )?;
                tracing::warn!(
                    file = %target.display(),
                    moved_to = %aside.display(),
                    "state file is corrupt ({why}); moved aside and starting from defaults"
                );
                Ok(None)
            }
        }
    }

    /// The bytes of `name`: `None` when missing, `Some(Err(..))` when larger
    /// than `cap`. Read through the directory descriptor, never a symlink.
    pub fn read_bytes(
        &self,
        name: &str,
        cap: u64,
    ) -> Result<Option<Result<Vec<u8>, Unreadable>>, StateError> {
        let target = self.file(name)?;
        let file = match safefs::open_file_at(self.fd.as_fd(), name, OFlag::O_RDONLY, &target) {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match crate::fsread::read_to_cap(file, cap, &target) {
            Ok(b) => Ok(Some(Ok(b))),
            Err(crate::fsread::ReadError::TooLarge { max, .. }) => {
                Ok(Some(Err(Unreadable::TooLarge { max })))
            }
            Err(e) => Err(StateError::Io {
                path: target.display().to_string(),
                action: "read",
                source: std::io::Error::other(e.to_string()),
            }),
        }
    }

    /// Open `name` for writing in place (created 0600 when missing), never
    /// through a symlink and never another user's file.
    pub fn open_for_overwrite(&self, name: &str) -> Result<File, StateError> {
        let target = self.file(name)?;
        Ok(safefs::open_file_at(
            self.fd.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT,
            &target,
        )?)
    }

    fn file(&self, name: &str) -> Result<PathBuf, StateError> {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && !name.contains('/')
            && !name.contains(".tmp.");
        if !plain {
            return Err(StateError::BadName(name.to_string()));
        }
        Ok(self.path.join(name))
    }

    fn write_bytes(&self, name: &str, target: &Path, bytes: &[u8]) -> Result<(), StateError> {
        let io = |action, source| StateError::Io {
            path: target.display().to_string(),
            action,
            source,
        };
        // Unpredictable and created exclusively: a name planted in advance
        // (a symlink to a root-owned file) is an error, never written through.
        let tmp = format!(".{name}.tmp.{}", safefs::random_suffix());
        let mut f = safefs::create_new_at(self.fd.as_fd(), &tmp, &self.path.join(&tmp))?;
        let written = f
            .write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write temporary file", e));
        drop(f);
        let renamed = written.and_then(|()| {
            renameat(self.fd.as_fd(), tmp.as_str(), self.fd.as_fd(), name)
                .map_err(|e| io("rename", e.into()))
        });
        if let Err(e) = renamed {
            let _ = self.unlink(&tmp);
            return Err(e);
        }
        // The rename is durable only once the directory entry is on disk.
        nix::unistd::fsync(self.fd.as_fd()).map_err(|e| io("fsync directory", e.into()))
    }

    fn unlink(&self, name: &str) -> nix::Result<()> {
        nix::unistd::unlinkat(
            self.fd.as_fd(),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
    }

    fn remove_stale_temporaries(&self) {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp.") {
                // Relative to the opened directory: unlinks the entry itself.
                let _ = self.unlink(&name);
            }
        }
    }
}

/// The gateway identity stored on first start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The stable gateway id.
    pub gateway_id: String,
    /// Where the id came from: `machine-id` or `random`.
    pub source: String,
    /// When it was created.
    pub created: crate::primitives::Timestamp,
}

/// File name of the stored identity.
pub const IDENTITY_FILE: &str = "identity.json";

impl Identity {
    /// Load the stored identity, or create and store one: derived from
    /// `machine_id` when given, random otherwise.
    pub fn load_or_create(dir: &StateDir, machine_id: Option<&str>) -> Result<Self, StateError> {
        if let Some(id) = dir.read_json::<Identity>(IDENTITY_FILE)? {
            return Ok(id);
        }
        let (gateway_id, source) = match machine_id.map(str::trim).filter(|m| !m.is_empty()) {
            Some(m) => (derive_gateway_id(m), "machine-id"),
            None => (random_gateway_id(), "random"),
        };
        let id = Identity {
            gateway_id,
            source: source.to_string(),
            created: crate::primitives::Timestamp::now(),
        };
        dir.write_json(IDENTITY_FILE, &id)?;
        Ok(id)
    }
}

/// machine-id(5) asks applications not to expose the id itself: hash it with
/// an application-specific key.
pub fn derive_gateway_id(machine_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"edgereach gateway id\0")
        .chain_update(machine_id.trim().as_bytes())
        .finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("gw-{hex}")
}

fn random_gateway_id() -> String {
    let mut buf = [0u8; 6];
    crate::entropy::fill(&mut buf);
    let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    format!("gw-{hex}")
}

/// File holding the reserved event sequence (fsynced, atomic).
pub const EVENT_SEQ_FILE: &str = "event-seq.json";
/// File holding the last event sequence used (overwritten per event, not fsynced).
pub const EVENT_SEQ_LAST_FILE: &str = "event-seq.last";
/// Sequence numbers reserved at a time: the most a power cut can skip.
pub const EVENT_SEQ_BLOCK: u64 = 1000;

#[derive(Debug, Serialize, Deserialize)]
struct SeqReservation {
    /// Every sequence number up to this one may have been used.
    reserved: u64,
    /// `reserved` is exactly the last one used (written at a clean stop).
    exact: bool,
}

/// Keeps event sequence numbers increasing across daemon restarts, crashes
/// and power cuts.
///
/// Three layers, so no event pays for an fsync: a clean stop stores the exact
/// last number; every event overwrites `event-seq.last` (the page cache
/// survives `kill -9`; the kernel boot id tells whether it survived a power
/// cut); and blocks of [`EVENT_SEQ_BLOCK`] numbers are reserved durably
/// ahead, so after a power cut numbering resumes past anything possibly used.
/// A gap after a power cut is honest: events in memory were lost with it.
#[derive(Debug)]
pub struct EventSeqStore {
    dir: StateDir,
    reserved: u64,
    last_file: Option<File>,
    boot_id: String,
    warned: bool,
}

impl EventSeqStore {
    /// Open the store; returns it and the last sequence number used before.
    pub fn open(dir: &StateDir) -> Result<(Self, u64), StateError> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let res = dir.read_json::<SeqReservation>(EVENT_SEQ_FILE)?;
        let last = match res {
            None => 0,
            Some(r) if r.exact => r.reserved,
            Some(r) => {
                let text = match dir.read_bytes(EVENT_SEQ_LAST_FILE, 4096)? {
                    Some(Ok(b)) => String::from_utf8_lossy(&b).into_owned(),
                    _ => String::new(),
                };
                let mut parts = text.split_whitespace();
                let seq = parts.next().and_then(|s| s.parse::<u64>().ok());
                let same_boot = !boot_id.is_empty() && parts.next() == Some(boot_id.as_str());
                match seq {
                    Some(seq) if same_boot && seq <= r.reserved => seq,
                    _ => r.reserved,
                }
            }
        };
        let mut store = Self {
            dir: dir.clone(),
            reserved: last,
            last_file: None,
            boot_id,
            warned: false,
        };
        store.reserve(last)?;
        // Overwritten in place per event: a symlink or a foreign file here
        // would have root write into someone else's file, so it is an error.
        store.last_file = match dir.open_for_overwrite(EVENT_SEQ_LAST_FILE) {
            Ok(f) => Some(f),
            Err(e @ StateError::Unsafe(SafeError::Refused { .. })) => return Err(e),
            Err(_) => None,
        };
        store.record(last);
        Ok((store, last))
    }

    fn reserve(&mut self, from: u64) -> Result<(), StateError> {
        let reserved = from.saturating_add(EVENT_SEQ_BLOCK);
        self.dir.write_json(
            EVENT_SEQ_FILE,
            &SeqReservation {
                reserved,
                exact: false,
            },
        )?;
        self.reserved = reserved;
        Ok(())
    }

    /// `seq` was just used. Cheap: one small overwrite, an fsynced
    /// reservation only every [`EVENT_SEQ_BLOCK`] events.
    pub fn record(&mut self, seq: u64) {
        use std::os::unix::fs::FileExt;
        let mut result = Ok(());
        if seq >= self.reserved {
            result = self.reserve(seq).map_err(|e| e.to_string());
        }
        if let Some(f) = &self.last_file {
            // Fixed width, so an overwrite never leaves a longer old tail.
            let line = format!("{seq:020} {:<36}\n", self.boot_id);
            if let Err(e) = f.write_all_at(line.as_bytes(), 0) {
                result = Err(e.to_string());
            }
        }
        if let Err(e) = result {
            if !self.warned {
                self.warned = true;
                tracing::warn!("cannot store the event sequence number ({e}); after a restart numbering may skip ahead");
            }
        }
    }

    /// Clean stop: store the exact last number.
    pub fn close(&mut self, last: u64) -> Result<(), StateError> {
        self.dir.write_json(
            EVENT_SEQ_FILE,
            &SeqReservation {
                reserved: last,
                exact: true,
            },
        )?;
        self.reserved = last;
        Ok(())
    }
}

/// Why a state file's content is set aside rather than used.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// Over the cap for this file.
    #[error("larger than {max} bytes")]
    TooLarge {
        /// The cap.
        max: u64,
    },
    /// Not the JSON expected.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_then_read_with_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(&tmp.path().join("st")).unwrap();
        dir.write_json("a.json", &vec![1, 2, 3]).unwrap();
        assert_eq!(
            dir.read_json::<Vec<u32>>("a.json").unwrap(),
            Some(vec![1, 2, 3])
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("a.json")), 0o600);
        assert_eq!(mode(dir.path()), 0o700);
    }

    #[test]
    fn corrupt_file_is_moved_aside_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        fs::write(tmp.path().join("a.json"), b"{\"trunc").unwrap();
        assert_eq!(dir.read_json::<serde_json::Value>("a.json").unwrap(), None);
        assert!(tmp.path().join("a.json.corrupt").exists());
        assert!(!tmp.path().join("a.json").exists());
        assert_eq!(dir.read_json::<serde_json::Value>("a.json").unwrap(), None);
    }

    #[test]
    fn oversized_file_counts_as_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let big = vec![b' '; (MAX_STATE_FILE_BYTES + 10) as usize];
        fs::write(tmp.path().join("big.json"), big).unwrap();
        assert_eq!(
            dir.read_json::<serde_json::Value>("big.json").unwrap(),
            None
        );
    }

    #[test]
    fn names_cannot_escape() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        for bad in ["", "../x", ".hidden", "a/b", "x.tmp.1"] {
            assert!(
                matches!(dir.write_json(bad, &1), Err(StateError::BadName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn stale_temporaries_are_removed_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(".a.json.tmp.999"), b"x").unwrap();
        StateDir::open(tmp.path()).unwrap();
        assert!(!tmp.path().join(".a.json.tmp.999").exists());
    }

    #[test]
    fn identity_is_stable_and_derived() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let a = Identity::load_or_create(&dir, Some("0123456789abcdef\n")).unwrap();
        assert_eq!(a.source, "machine-id");
        assert_eq!(a.gateway_id, derive_gateway_id("0123456789abcdef"));
        assert!(!a.gateway_id.contains("0123456789"));
        let b = Identity::load_or_create(&dir, Some("other")).unwrap();
        assert_eq!(a, b, "stored identity wins over a changed machine-id");
        let r = Identity::load_or_create(&StateDir::open(&tmp.path().join("r")).unwrap(), None)
            .unwrap();
        assert_eq!(r.source, "random");
        assert_eq!(r.gateway_id.len(), 15);
    }

    #[test]
    fn event_seq_survives_clean_stop_crash_and_power_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let (mut s, last) = EventSeqStore::open(&dir).unwrap();
        assert_eq!(last, 0);
        for seq in 1..=5 {
            s.record(seq);
        }
        s.close(5).unwrap();
        drop(s);
        // clean stop: exact
        let (mut s, last) = EventSeqStore::open(&dir).unwrap();
        assert_eq!(last, 5);
        for seq in 6..=1500 {
            s.record(seq);
        }
        drop(s); // kill -9: no close, the page cache keeps the last file
        let (s, last) = EventSeqStore::open(&dir).unwrap();
        assert_eq!(last, 1500);
        drop(s);
        // power cut: the last file is lost or from another boot
        fs::write(
            tmp.path().join(EVENT_SEQ_LAST_FILE),
            "00000000000000001400 other-boot\n",
        )
        .unwrap();
        let (_, last) = EventSeqStore::open(&dir).unwrap();
        assert!(last >= 1500, "never reused: {last}");
        assert!(last <= 1500 + 2 * EVENT_SEQ_BLOCK, "{last}");
    }
}
