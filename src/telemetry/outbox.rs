//! The durable outbox: every netcheck report and event is on disk (fsynced)
//! before it is published, and leaves only once the broker acknowledged it.
//!
//! Records go into append-only segment files `seg-<first id>.log` in one
//! directory, framed by [`super::frame`]. An acknowledgement is one more frame
//! (not fsynced: losing it in a power cut only means a duplicate, which
//! consumers drop by `seq`). A segment whose records are all acknowledged is
//! deleted once it is no longer the one written to. The total size of the
//! segments is bounded: when a new record would not fit, the oldest segment
//! goes, and its unacknowledged records are counted as dropped (a counter that
//! survives in `meta` frames). Order is the order of `append`.
//!
//! No MQTT here: the actor asks for [`Outbox::pending`] and reports acks.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use crate::safefs::{self, SafeError};

use super::frame::{self, Frame};

/// Smallest bound accepted for the whole outbox.
pub const MIN_MAX_BYTES: u64 = 1024 * 1024;
/// How many segments the bound is split into (the granularity of dropping).
const SEGMENTS_PER_BOUND: u64 = 16;

/// An outbox problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Reading, writing or syncing a file failed.
    #[error("outbox {path}: {action}: {source}")]
    Io {
        /// File or directory.
        path: String,
        /// What was being done.
        action: &'static str,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A symlink or another user's directory or segment (names the path
    /// and the owner), or a system call on it failed.
    #[error("outbox {0}")]
    Unsafe(#[from] SafeError),
    /// The record cannot be stored.
    #[error(transparent)]
    Encode(#[from] frame::EncodeError),
}

/// One record waiting for its acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Outbox id, increasing in append order.
    pub id: u64,
    /// Topic suffix under the prefix, e.g. `events`.
    pub topic: String,
    /// Message payload.
    pub payload: Vec<u8>,
    segment: u64,
}

/// What opening found on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files read.
    pub segments: usize,
    /// Unacknowledged records found.
    pub pending: usize,
    /// Bytes cut off the end of the last segment (a write torn by a crash).
    pub torn_tail_bytes: u64,
    /// Bytes skipped inside segments (corruption).
    pub corrupt_bytes: u64,
}

struct Segment {
    first_id: u64,
    path: PathBuf,
    size: u64,
    unacked: usize,
}

/// The outbox in one directory.
pub struct Outbox {
    dir: PathBuf,
    /// The directory, held open: segments are opened relative to it and
    /// never through a symlink (the daemon runs as root).
    fd: OwnedFd,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    active: File,
    pending: VecDeque<Record>,
    next_id: u64,
    dropped: u64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("dir", &self.dir)
            .field("pending", &self.pending.len())
            .field("bytes", &self.bytes())
            .field("dropped", &self.dropped)
            .finish()
    }
}

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> OutboxError + 'a {
    move |source| OutboxError::Io {
        path: path.display().to_string(),
        action,
        source,
    }
}

fn segment_name(first_id: u64) -> String {
    format!("seg-{first_id:020}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What the segments on disk hold, read oldest first when the outbox opens.
#[derive(Default)]
struct Scan {
    recovery: Recovery,
    segments: VecDeque<Segment>,
    pending: VecDeque<Record>,
    acked: HashSet<u64>,
    dropped: u64,
    max_id: u64,
}

impl Scan {
    /// Read segment `first_id` (at most twice the bound); the `last` one is
    /// appended to, so a torn write is cut off it.
    fn read(
        &mut self,
        dir: &Path,
        fd: BorrowedFd<'_>,
        first_id: u64,
        last: bool,
        max_bytes: u64,
    ) -> Result<(), OutboxError> {
        let name = segment_name(first_id);
        let path = dir.join(&name);
        let mut bytes = Vec::new();
        safefs::open_file_at(fd, &name, OFlag::O_RDONLY, &path)?
            .take(max_bytes.saturating_mul(2))
            .read_to_end(&mut bytes)
            .map_err(io(&path, "read segment"))?;
        let decoded = frame::decode_all(&bytes);
        self.recovery.corrupt_bytes += decoded.skipped as u64;
        let mut size = bytes.len() as u64;
        if last && decoded.valid_end < bytes.len() {
            self.recovery.torn_tail_bytes = (bytes.len() - decoded.valid_end) as u64;
            size = decoded.valid_end as u64;
            let f = safefs::open_file_at(fd, &name, OFlag::O_WRONLY, &path)?;
            f.set_len(size)
                .and_then(|()| f.sync_all())
                .map_err(io(&path, "cut torn tail"))?;
        }
        for (_, f) in decoded.frames {
            match f {
                Frame::Data { id, topic, payload } if id > self.max_id => {
                    self.max_id = id;
                    self.pending.push_back(Record {
                        id,
                        topic: topic.to_string(),
                        payload: payload.to_vec(),
                        segment: first_id,
                    });
                }
                Frame::Data { .. } => {} // out of order: a duplicate, ignored
                Frame::Ack { id } => {
                    self.acked.insert(id);
                }
                Frame::Meta { dropped: d } => self.dropped = self.dropped.max(d),
            }
        }
        self.segments.push_back(Segment {
            first_id,
            path,
            size,
            unacked: 0,
        });
        Ok(())
    }

    /// Drop what was acknowledged and count what is left in each segment.
    fn settle(&mut self) {
        let acked = &self.acked;
        self.pending.retain(|r| !acked.contains(&r.id));
        for r in &self.pending {
            if let Some(s) = self.segments.iter_mut().find(|s| s.first_id == r.segment) {
                s.unacked += 1;
            }
        }
        self.recovery.segments = self.segments.len();
        self.recovery.pending = self.pending.len();
    }
}

impl Outbox {
    /// Open (creating if needed) the outbox in `dir`, bounded to `max_bytes`
    /// (at least [`MIN_MAX_BYTES`]). A torn tail is cut off the last segment.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<(Self, Recovery), OutboxError> {
        let max_bytes = max_bytes.max(MIN_MAX_BYTES);
        let segment_bytes = (max_bytes / SEGMENTS_PER_BOUND).max(64 * 1024);
        let fd = safefs::open_dir(dir)?;
        let mut ids: Vec<u64> = fs::read_dir(dir)
            .map_err(io(dir, "list directory"))?
            .flatten()
            .filter_map(|e| parse_segment_name(&e.file_name().to_string_lossy()))
            .collect();
        ids.sort_unstable();
        let mut scan = Scan::default();
        let count = ids.len();
        for (i, first_id) in ids.into_iter().enumerate() {
            let last = i + 1 == count;
            scan.read(dir, fd.as_fd(), first_id, last, max_bytes)?;
        }
        scan.settle();
        let Scan {
            mut recovery,
            segments,
            pending,
            dropped,
            max_id,
            ..
        } = scan;
        let next_id = max_id
            .max(segments.back().map_or(0, |s| s.first_id.saturating_sub(1)))
            .saturating_add(1);
        let (active, new_segment) = match segments.back() {
            Some(s) => (
                safefs::open_file_at(
                    fd.as_fd(),
                    &segment_name(s.first_id),
                    OFlag::O_WRONLY | OFlag::O_APPEND,
                    &s.path,
                )?,
                None,
            ),
            None => {
                let (file, seg) = create_segment(dir, fd.as_fd(), next_id, dropped)?;
                (file, Some(seg))
            }
        };
        let mut outbox = Self {
            dir: dir.to_path_buf(),
            fd,
            max_bytes,
            segment_bytes,
            segments,
            active,
            pending,
            next_id,
            dropped,
        };
        if let Some(seg) = new_segment {
            outbox.segments.push_back(seg);
        }
        outbox.make_room(0)?;
        recovery.pending = outbox.pending.len();
        Ok((outbox, recovery))
    }

    /// Store a record durably (fsynced) and return its id. Makes room by
    /// dropping the oldest segment when the bound would be exceeded.
    pub fn append(&mut self, topic: &str, payload: &[u8]) -> Result<u64, OutboxError> {
        let id = self.next_id;
        let bytes = frame::encode(&Frame::Data { id, topic, payload })?;
        let len = bytes.len() as u64;
        if self.active_segment().size + len > self.segment_bytes {
            self.rotate()?;
        }
        self.make_room(len)?;
        self.write_active(&bytes, true)?;
        self.next_id += 1;
        let segment = self.active_segment().first_id;
        self.active_segment_mut().unacked += 1;
        self.pending.push_back(Record {
            id,
            topic: topic.to_string(),
            payload: payload.to_vec(),
            segment,
        });
        Ok(id)
    }

    /// The broker acknowledged record `id`: forget it. Unknown ids (already
    /// acknowledged, or dropped meanwhile) are ignored.
    pub fn ack(&mut self, id: u64) -> Result<(), OutboxError> {
        let Ok(at) = self.pending.binary_search_by_key(&id, |r| r.id) else {
            return Ok(());
        };
        let Some(rec) = self.pending.remove(at) else {
            return Ok(());
        };
        let bytes = frame::encode(&Frame::Ack { id })?;
        // Not fsynced: a lost ack costs only a duplicate after a power cut.
        self.write_active(&bytes, false)?;
        if let Some(s) = self.segments.iter_mut().find(|s| s.first_id == rec.segment) {
            s.unacked = s.unacked.saturating_sub(1);
        }
        if self.active_segment().unacked == 0 && self.active_segment().size >= self.segment_bytes {
            self.rotate()?;
        }
        self.delete_resolved()
    }

    /// Records waiting for an acknowledgement, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Record> {
        self.pending.iter()
    }

    /// The oldest records with an id above `after`, at most `limit` of them.
    pub fn pending_after(&self, after: u64, limit: usize) -> Vec<Record> {
        let start = self.pending.partition_point(|r| r.id <= after);
        self.pending.range(start..).take(limit).cloned().collect()
    }

    /// The id of the last record appended (0 before any).
    pub fn last_id(&self) -> u64 {
        self.next_id.saturating_sub(1)
    }

    /// Number of records waiting.
    pub fn depth(&self) -> usize {
        self.pending.len()
    }

    /// Bytes on disk (all segments).
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Records dropped because the outbox was full, since it was created.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The configured bound.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn active_segment(&self) -> &Segment {
        // open() always leaves at least one segment, and rotate() adds before removing.
        &self.segments[self.segments.len() - 1]
    }

    fn active_segment_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn write_active(&mut self, bytes: &[u8], sync: bool) -> Result<(), OutboxError> {
        let seg = &self.segments[self.segments.len() - 1];
        let before = seg.size;
        let path = seg.path.clone();
        let written = self.active.write_all(bytes).and_then(|()| {
            if sync {
                self.active.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Leave no half frame behind for the next append to follow.
            let _ = self.active.set_len(before);
            return Err(io(&path, "append")(e));
        }
        self.active_segment_mut().size += bytes.len() as u64;
        Ok(())
    }

    /// Whether the active segment holds any record (else rotating would
    /// only recreate it under the same name).
    fn active_has_records(&self) -> bool {
        self.active_segment().first_id < self.next_id
    }

    fn rotate(&mut self) -> Result<(), OutboxError> {
        if !self.active_has_records() {
            return Ok(());
        }
        let (file, seg) = create_segment(&self.dir, self.fd.as_fd(), self.next_id, self.dropped)?;
        self.active = file;
        self.segments.push_back(seg);
        self.delete_resolved()
    }

    /// Delete leading segments that are fully acknowledged and not active.
    fn delete_resolved(&mut self) -> Result<(), OutboxError> {
        let mut deleted = false;
        while self.segments.len() > 1 && self.segments[0].unacked == 0 {
            if let Some(s) = self.segments.pop_front() {
                self.unlink(&s)?;
                deleted = true;
            }
        }
        if deleted {
            sync_dir(&self.dir, self.fd.as_fd())?;
        }
        Ok(())
    }

    /// Drop oldest segments until `extra` more bytes fit in the bound.
    fn make_room(&mut self, extra: u64) -> Result<(), OutboxError> {
        let mut dropped_now = 0;
        while self.bytes() + extra > self.max_bytes {
            if self.segments.len() == 1 {
                if !self.active_has_records() {
                    break; // nothing left to drop: one record larger than the bound
                }
                self.rotate()?;
                continue;
            }
            if let Some(s) = self.segments.pop_front() {
                let before = self.pending.len();
                self.pending.retain(|r| r.segment != s.first_id);
                dropped_now += (before - self.pending.len()) as u64;
                self.unlink(&s)?;
            }
        }
        if dropped_now > 0 {
            self.dropped += dropped_now;
            sync_dir(&self.dir, self.fd.as_fd())?;
            let meta = frame::encode(&Frame::Meta {
                dropped: self.dropped,
            })?;
            self.write_active(&meta, true)?;
        }
        Ok(())
    }
}

impl Outbox {
    fn unlink(&self, s: &Segment) -> Result<(), OutboxError> {
        nix::unistd::unlinkat(
            self.fd.as_fd(),
            segment_name(s.first_id).as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(|e| io(&s.path, "delete segment")(e.into()))
    }
}

fn create_segment(
    dir: &Path,
    fd: std::os::fd::BorrowedFd<'_>,
    first_id: u64,
    dropped: u64,
) -> Result<(File, Segment), OutboxError> {
    let name = segment_name(first_id);
    let path = dir.join(&name);
    // Exclusive: a name planted in advance is an error, never written through.
    let flags = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_EXCL;
    let mut file = safefs::open_file_at(fd, &name, flags, &path)?;
    let meta = frame::encode(&Frame::Meta { dropped })?;
    file.write_all(&meta)
        .and_then(|()| file.sync_all())
        .map_err(io(&path, "write segment header"))?;
    sync_dir(dir, fd)?;
    let size = meta.len() as u64;
    Ok((
        file,
        Segment {
            first_id,
            path,
            size,
            unacked: 0,
        },
    ))
}

fn sync_dir(dir: &Path, fd: std::os::fd::BorrowedFd<'_>) -> Result<(), OutboxError> {
    nix::unistd::fsync(fd).map_err(|e| io(dir, "fsync directory")(e.into()))
}

#[cfg(test)]
mod tests;
