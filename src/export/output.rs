//! Where the trace goes: stdout, a device or pipe written in place, or a regular file written
//! atomically (a temporary file beside it, renamed when complete).

use anyhow::Result;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::pipeline::WriteFailed;
use crate::cleanup::TempFile;
use crate::error::{FailureKind, failure};

#[derive(Debug, Clone, PartialEq)]
pub enum OutputTarget {
    File(PathBuf),
    Stdout,
}

/// An output opened for the trace; [`Output::commit`] makes a file's trace visible.
pub struct Output {
    sink: Sink,
}

enum Sink {
    Stdout,
    /// A device or pipe (`/dev/null`, a FIFO): renaming over those would replace them.
    InPlace {
        file: std::fs::File,
        path: PathBuf,
    },
    /// A regular file (new or replaced; through a symbolic link, where it points): the
    /// destination only ever holds a complete trace, and a failed run leaves nothing behind.
    Atomic {
        temp: TempFile,
        path: PathBuf,
    },
}

impl Output {
    pub fn open(target: &OutputTarget) -> Result<Self> {
        let path = match target {
            OutputTarget::Stdout => return Ok(Self { sink: Sink::Stdout }),
            OutputTarget::File(path) => path,
        };
        let sink = match std::fs::metadata(path) {
            Ok(meta) if !meta.is_file() && !meta.is_dir() => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| cannot_write(path, e))?;
                Sink::InPlace {
                    file,
                    path: path.clone(),
                }
            }
            // A dangling link is replaced like a missing file.
            _ => {
                let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                let dir = output_dir(&path)?;
                let temp = TempFile::create_in(&dir).map_err(|e| {
                    failure(
                        FailureKind::Io,
                        format!("cannot create a file in {}: {e}", dir.display()),
                    )
                })?;
                Sink::Atomic { temp, path }
            }
        };
        Ok(Self { sink })
    }

    /// Where to write the trace's bytes.
    pub fn writer(&self) -> Result<Box<dyn Write + Send>> {
        Ok(match &self.sink {
            Sink::Stdout => Box::new(std::io::stdout()),
            Sink::InPlace { file, path } => {
                Box::new(file.try_clone().map_err(|e| cannot_write(path, e))?)
            }
            Sink::Atomic { temp, path } => {
                Box::new((temp.file().try_clone()).map_err(|e| cannot_write(path, e))?)
            }
        })
    }

    /// A failure of writing the trace names the path, where the user expects it.
    pub fn name_failure(&self, e: anyhow::Error) -> anyhow::Error {
        let path = match &self.sink {
            Sink::Stdout => return e,
            Sink::InPlace { path, .. } | Sink::Atomic { path, .. } => path,
        };
        match e.downcast_ref::<WriteFailed>() {
            Some(_) => cannot_write(path, e.root_cause()),
            None => e,
        }
    }

    /// Makes a complete trace visible at its destination.
    pub fn commit(self) -> Result<()> {
        let Sink::Atomic { temp, path } = self.sink else {
            return Ok(());
        };
        temp.file().sync_all().map_err(|e| cannot_write(&path, e))?;
        temp.persist(&path).map_err(|e| {
            failure(
                FailureKind::Io,
                format!("cannot move the trace to {}: {e}", path.display()),
            )
        })
    }
}

/// The directory the trace goes to, checked before any work is done.
pub fn output_dir(path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let refuse = |why: String| {
        failure(
            FailureKind::Io,
            format!("cannot write {}: {why}", path.display()),
        )
    };
    if dir.exists() && !dir.is_dir() {
        return Err(refuse(format!("{} is not a directory", dir.display())));
    }
    if !dir.is_dir() {
        return Err(refuse(format!(
            "output directory {} does not exist",
            dir.display()
        )));
    }
    if path.is_dir() {
        return Err(refuse("it is a directory".into()));
    }
    Ok(dir)
}

fn cannot_write(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    failure(
        FailureKind::Io,
        format!("cannot write {}: {e}", path.display()),
    )
}

/// Counts, and hashes when asked, what passes through.
pub struct HashingWriter<W: Write> {
    inner: W,
    /// `None` when nobody asked for the checksum: hashing is 5% of an export.
    hasher: Option<Sha256>,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W, hash: bool) -> Self {
        Self {
            inner,
            hasher: hash.then(Sha256::new),
            bytes: 0,
        }
    }

    /// The SHA-256 of what was written, in hex, when asked for.
    pub fn sha256(self) -> Option<String> {
        self.hasher.map(|h| format!("{:x}", h.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

type Destination = HashingWriter<Box<dyn Write + Send>>;

/// The trace's way out: as is, or gzip-compressed. What reaches the destination is counted and
/// hashed, so the summary describes the file as written.
pub enum TraceOut {
    Plain(Destination),
    Gzip(flate2::write::GzEncoder<Destination>),
}

impl TraceOut {
    pub fn new(destination: Box<dyn Write + Send>, checksum: bool, gzip: bool) -> Self {
        let destination = HashingWriter::new(destination, checksum);
        match gzip {
            false => Self::Plain(destination),
            // No name, time or system in the header: the same trace gives the same bytes.
            true => Self::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(destination, flate2::Compression::fast()),
            ),
        }
    }

    /// Ends the stream; the bytes that reached the destination and their SHA-256 if asked for.
    pub fn finish(self) -> std::io::Result<(u64, Option<String>)> {
        let destination = match self {
            Self::Plain(destination) => destination,
            Self::Gzip(encoder) => encoder.finish()?,
        };
        let bytes = destination.bytes;
        Ok((bytes, destination.sha256()))
    }
}

impl Write for TraceOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Gzip(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(w) => w.write_all(buf),
            Self::Gzip(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Gzip(w) => w.flush(),
        }
    }
}
