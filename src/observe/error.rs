//! Errors of `observe` / `crosscheck`: each says what was being done and why it failed.

use std::fmt;
use std::format;
use std::io;
use std::path::Path;
use std::string::String;

use super::parse::ParseError;

#[derive(Debug)]
/// Why `observe`, `crosscheck` or `replay` failed.
pub enum ObserveError {
    /// The command needs root (debugfs, the bdi knobs, losetup, mount).
    NotRoot(String),
    /// debugfs (or its `bdi/` directory) is not available and could not be mounted.
    NoDebugfs(String),
    /// Reading or writing a file failed.
    Io {
        /// What was being read or written.
        what: String,
        /// What the OS said.
        source: io::Error,
    },
    /// A kernel file did not have the expected format.
    Parse {
        /// Which file.
        what: String,
        /// What was wrong in it.
        source: ParseError,
    },
    /// The core rejected something (e.g. a knob value it considers invalid).
    Model {
        /// What was being applied.
        what: String,
        /// The core's reason.
        source: String,
    },
    /// An external command (losetup, mkfs.ext4, mount, …) failed or is missing.
    Command {
        /// The command.
        cmd: String,
        /// Its exit status and output.
        detail: String,
    },
    /// Stopped by Ctrl-C / SIGTERM.
    Interrupted,
    /// The environment cannot run the experiment (used by `crosscheck --skip-unavailable`).
    Unavailable(String),
    /// Bad user input (arguments).
    Usage(String),
    /// Anything else, as text.
    Other(String),
}

impl ObserveError {
    /// A failed I/O operation on `what`.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        ObserveError::Io {
            what: what.into(),
            source,
        }
    }

    /// A failed I/O operation, `verb` (reading, writing, …) on `path`.
    pub fn io_path(verb: &str, path: &Path, source: io::Error) -> Self {
        ObserveError::Io {
            what: format!("{verb} {}", path.display()),
            source,
        }
    }

    /// A kernel file `what` that could not be parsed.
    pub fn parse(what: impl Into<String>, source: ParseError) -> Self {
        ObserveError::Parse {
            what: what.into(),
            source,
        }
    }
}

impl fmt::Display for ObserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObserveError::NotRoot(why) => write!(f, "must run as root: {why}"),
            ObserveError::NoDebugfs(why) => write!(f, "debugfs is not available: {why}"),
            ObserveError::Io { what, source } => write!(f, "{what}: {source}"),
            ObserveError::Parse { what, source } => write!(f, "parsing {what}: {source}"),
            ObserveError::Model { what, source } => write!(f, "{what}: {source}"),
            ObserveError::Command { cmd, detail } => write!(f, "`{cmd}` failed: {detail}"),
            ObserveError::Interrupted => write!(f, "interrupted"),
            ObserveError::Unavailable(why) => write!(f, "cannot run here: {why}"),
            ObserveError::Usage(why) => write!(f, "{why}"),
            ObserveError::Other(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for ObserveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ObserveError::Io { source, .. } => Some(source),
            ObserveError::Parse { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The result of the observe commands.
pub type Result<T, E = ObserveError> = std::result::Result<T, E>;
