//! Reading a small file that someone else names: the configuration, a token
//! file, a DERP map. The size is bounded by what is read, never by what
//! metadata claims (/dev/zero and a FIFO say 0 bytes and never end), and
//! only regular files are read at all.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a capped read refused or failed; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A device, FIFO, socket or directory where a file was expected.
    #[error("{path}: is a {kind}, not a regular file")]
    NotRegular {
        /// The file.
        path: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// More bytes than the cap.
    #[error("{path}: larger than the {max} bytes allowed")]
    TooLarge {
        /// The file.
        path: String,
        /// The cap.
        max: u64,
    },
}

impl ReadError {
    /// Whether the file is simply not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Open `path` for reading without blocking on a FIFO (O_NONBLOCK), and
/// refuse it unless the opened descriptor is a regular file.
pub fn open_regular(path: &Path, extra_flags: i32) -> Result<File, ReadError> {
    let shown = || path.display().to_string();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | extra_flags)
        .open(path)
        .map_err(|source| ReadError::Io {
            path: shown(),
            source,
        })?;
    // fstat of the opened descriptor: no window between check and use.
    let meta = file.metadata().map_err(|source| ReadError::Io {
        path: shown(),
        source,
    })?;
    if let Some(kind) = special_kind(&meta.file_type()) {
        return Err(ReadError::NotRegular {
            path: shown(),
            kind,
        });
    }
    Ok(file)
}

/// What `t` is when it is not a regular file (`None` for a regular file).
pub fn special_kind(t: &std::fs::FileType) -> Option<&'static str> {
    let kind = if t.is_file() {
        return None;
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "symbolic link"
    };
    Some(kind)
}

/// Read at most `cap` bytes from an opened file; more is an error.
pub fn read_to_cap(file: File, cap: u64, path: &Path) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: path.display().to_string(),
            source,
        })?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            path: path.display().to_string(),
            max: cap,
        });
    }
    Ok(bytes)
}

/// The whole of the regular file `path`, at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    read_to_cap(open_regular(path, 0)?, cap, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_file_within_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_capped(&p, 5).unwrap(), b"12345");
        let e = read_capped(&p, 4).unwrap_err().to_string();
        assert!(e.contains("larger than the 4 bytes"), "{e}");
        assert!(read_capped(&dir.path().join("nope"), 4)
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn special_files_are_refused_without_reading() {
        let e = read_capped(Path::new("/dev/zero"), 10)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "/dev/zero: is a character device, not a regular file");
        let dir = tempfile::tempdir().unwrap();
        let e = read_capped(dir.path(), 10).unwrap_err().to_string();
        assert!(e.ends_with("is a directory, not a regular file"), "{e}");
        let fifo = dir.path().join("p");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_capped(&fifo, 10).unwrap_err().to_string();
        assert!(e.ends_with("is a FIFO, not a regular file"), "{e}");
    }
}
