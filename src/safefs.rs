//! Files the daemon owns, opened so that nobody else's file is written.
//!
//! The daemon runs as root on a gateway. A state directory or file that is a
//! symbolic link, or that belongs to another user, would let that user have
//! root write (or chmod) a file of their choosing. So the last component is
//! never followed (`O_NOFOLLOW`), the owner and type are checked on the
//! opened descriptor (`fstat`, no window between check and use), files are
//! opened relative to the opened directory (`openat`), and new files are
//! created exclusively (`O_EXCL`) under unpredictable names.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstat, FileStat, Mode, SFlag};

/// Why a path was refused or could not be opened; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum SafeError {
    /// The path is not ours to use.
    #[error("{path}: refused: {why}")]
    Refused {
        /// The path.
        path: String,
        /// What is wrong: a symlink, another owner, not a regular file.
        why: String,
    },
    /// A system call failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The path.
        path: String,
        /// What was being done.
        action: &'static str,
        /// Underlying error.
        source: std::io::Error,
    },
}

impl SafeError {
    /// Whether the file is simply not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SafeError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(Errno) -> SafeError + 'a {
    move |e| SafeError::Io {
        path: path.display().to_string(),
        action,
        source: std::io::Error::from(e),
    }
}

fn refused(path: &Path, why: impl Into<String>) -> SafeError {
    SafeError::Refused {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// "uid 1000 (alice)", for errors.
fn describe_uid(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("uid {uid} ({})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// `ELOOP` from `O_NOFOLLOW` means the last component is a symlink.
fn open_error(path: &Path, action: &'static str, e: Errno) -> SafeError {
    if e == Errno::ELOOP {
        return refused(
            path,
            "is a symbolic link; the daemon never follows one here",
        );
    }
    io(path, action)(e)
}

/// Refuse `st` unless our effective user owns it and it has type `want`.
fn check_stat(st: &FileStat, want: SFlag, path: &Path) -> Result<(), SafeError> {
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid != me {
        return Err(refused(
            path,
            format!(
                "owned by {}, not by the daemon's user {}",
                describe_uid(st.st_uid),
                describe_uid(me)
            ),
        ));
    }
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind != want {
        let what = if want == SFlag::S_IFDIR {
            "not a directory"
        } else {
            "not a regular file"
        };
        return Err(refused(path, what));
    }
    Ok(())
}

/// Open (creating with mode 0700 when missing) the directory `path`, which
/// must not be a symlink and must be ours; its mode is then set to 0700 on
/// the descriptor. Parents are created as usual and may be symlinks
/// (`/var/lib` on some images): only the directory itself is ours to check.
pub fn open_dir(path: &Path) -> Result<OwnedFd, SafeError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| SafeError::Io {
            path: parent.display().to_string(),
            action: "create directory",
            source,
        })?;
    }
    match nix::unistd::mkdir(path, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(io(path, "create directory")(e)),
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(AT_FDCWD, path, flags, Mode::empty()).map_err(|e| match e {
        // O_DIRECTORY on a symlink gives ENOTDIR, not ELOOP.
        Errno::ENOTDIR if is_symlink(path) => open_error(path, "open directory", Errno::ELOOP),
        e => open_error(path, "open directory", e),
    })?;
    let st = fstat(fd.as_fd()).map_err(io(path, "stat directory"))?;
    check_stat(&st, SFlag::S_IFDIR, path)?;
    fchmod(fd.as_fd(), Mode::from_bits_truncate(0o700)).map_err(io(path, "set mode 0700"))?;
    Ok(fd)
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Open `name` in the directory `dir` (shown as `path` in errors) without
/// following a symlink, and refuse it unless it is our regular file.
/// `flags` adds e.g. `O_WRONLY | O_CREAT`; reads never block on a FIFO.
pub fn open_file_at(
    dir: impl AsFd,
    name: &str,
    flags: OFlag,
    path: &Path,
) -> Result<File, SafeError> {
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = openat(dir, name, flags, Mode::from_bits_truncate(0o600))
        .map_err(|e| open_error(path, "open", e))?;
    let st = fstat(fd.as_fd()).map_err(io(path, "stat"))?;
    check_stat(&st, SFlag::S_IFREG, path)?;
    let file = File::from(fd);
    // Only the open had to be non-blocking (a FIFO planted in our place).
    clear_nonblock(&file, path)?;
    Ok(file)
}

fn clear_nonblock(file: &File, path: &Path) -> Result<(), SafeError> {
    use nix::fcntl::{fcntl, FcntlArg};
    let bits = fcntl(file, FcntlArg::F_GETFL).map_err(io(path, "get flags"))?;
    let without = OFlag::from_bits_truncate(bits) & !OFlag::O_NONBLOCK;
    fcntl(file, FcntlArg::F_SETFL(without)).map_err(io(path, "set flags"))?;
    Ok(())
}

/// Create `name` in `dir` exclusively (`O_EXCL`: an existing file or
/// symlink of that name is an error, never opened), mode 0600, for writing.
pub fn create_new_at(dir: impl AsFd, name: &str, path: &Path) -> Result<File, SafeError> {
    open_file_at(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
        path,
    )
}

/// An unpredictable name suffix for temporary files (64 random bits).
pub fn random_suffix() -> String {
    let mut b = [0u8; 8];
    crate::entropy::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_directory_and_files_open() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/b");
        let fd = open_dir(&d).unwrap();
        let p = d.join("f");
        let f = create_new_at(&fd, "f", &p).unwrap();
        drop(f);
        let e = create_new_at(&fd, "f", &p).unwrap_err();
        assert!(e.to_string().contains("exists"), "{e}");
        open_file_at(&fd, "f", OFlag::O_RDONLY, &p).unwrap();
        assert!(open_file_at(&fd, "missing", OFlag::O_RDONLY, &p)
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn symlinks_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("t"), "x").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = open_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let fd = open_dir(&real).unwrap();
        std::os::unix::fs::symlink(real.join("t"), real.join("l")).unwrap();
        let e = open_file_at(&fd, "l", OFlag::O_RDONLY, &real.join("l")).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = create_new_at(&fd, "l", &real.join("l")).unwrap_err();
        assert!(e.to_string().contains("exists"), "{e}");
        assert_eq!(std::fs::read_to_string(real.join("t")).unwrap(), "x");
    }
}
