//! Writing the trace on a thread of its own: the encoder hands over full buffers and goes on
//! encoding while they are compressed, hashed and copied to the destination.
//!
//! With thousands of small threads the encoder is the slower side of an export, and the
//! kernel's copy of each write into the page cache (or gzip, or the checksum) then added to it.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

/// Bytes handed over at a time: the trace writer's own writes are this size (1 MiB buffers
/// held about 1 MB more at the peak, for no time).
const BUFFER_BYTES: usize = 1 << 18;
/// Full buffers that may wait for the writing thread: memory stays within a few buffers.
const QUEUED_BUFFERS: usize = 2;

/// A writer whose bytes reach `W` on another thread, in order. [`BackgroundWriter::finish`]
/// waits for all of them and reports the first failure; a failure is also reported by the
/// first write after it. Dropped unfinished, it still waits for the writes handed over, so
/// nothing is written to the destination once it is gone.
pub struct BackgroundWriter<W: Write + Send + 'static> {
    buffer: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    /// Buffers written, to be filled again.
    empty: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<(W, io::Result<()>)>>,
}

impl<W: Write + Send + 'static> BackgroundWriter<W> {
    pub fn new(mut inner: W) -> Self {
        let (full, full_receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUED_BUFFERS);
        let (empty_sender, empty) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            for mut buffer in full_receiver {
                if let Err(e) = inner.write_all(&buffer) {
                    return (inner, Err(e));
                }
                buffer.clear();
                // The sending side may be gone already: the buffer is then just freed.
                let _ = empty_sender.send(buffer);
            }
            let flushed = inner.flush();
            (inner, flushed)
        });
        Self {
            buffer: Vec::with_capacity(BUFFER_BYTES),
            full: Some(full),
            empty,
            thread: Some(thread),
        }
    }

    /// Waits until everything is written and flushed; the destination, or the first failure.
    pub fn finish(mut self) -> io::Result<W> {
        self.hand_over()?;
        drop(self.full.take());
        let (inner, written) = self.join()?;
        written.map(|()| inner)
    }

    /// Hands the buffer over to the writing thread, taking a written one in its place.
    fn hand_over(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let next = match self.empty.try_recv() {
            Ok(buffer) => buffer,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                Vec::with_capacity(BUFFER_BYTES)
            }
        };
        let buffer = std::mem::replace(&mut self.buffer, next);
        let sent = match &self.full {
            Some(full) => full.send(buffer).is_ok(),
            None => false,
        };
        match sent {
            true => Ok(()),
            // The thread stopped: it says why.
            false => Err(self.failure()),
        }
    }

    /// Why the writing thread stopped early.
    fn failure(&mut self) -> io::Error {
        drop(self.full.take());
        match self.join() {
            Ok((_, Err(e))) => e,
            Ok((_, Ok(()))) => io::Error::other("the trace's writing thread stopped"),
            Err(e) => e,
        }
    }

    fn join(&mut self) -> io::Result<(W, io::Result<()>)> {
        let thread = (self.thread.take())
            .ok_or_else(|| io::Error::other("the trace's writing thread already stopped"))?;
        thread
            .join()
            .map_err(|_| io::Error::other("the trace's writing thread failed"))
    }
}

impl<W: Write + Send + 'static> Write for BackgroundWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + buf.len() > BUFFER_BYTES {
            self.hand_over()?;
        }
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Hands over what is buffered without waiting for it: [`BackgroundWriter::finish`] is
    /// where everything is known written.
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

impl<W: Write + Send + 'static> Drop for BackgroundWriter<W> {
    fn drop(&mut self) {
        drop(self.full.take());
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination that takes `room` bytes, then fails.
    struct Filling {
        written: Vec<u8>,
        room: usize,
    }

    impl Write for Filling {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.written.len() + buf.len() > self.room {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"));
            }
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn every_byte_reaches_the_destination_in_order() {
        let bytes = pattern(5 * BUFFER_BYTES + 12345);
        let mut writer = BackgroundWriter::new(Filling {
            written: Vec::new(),
            room: usize::MAX,
        });
        for chunk in bytes.chunks(70_001) {
            writer.write_all(chunk).unwrap();
        }
        writer.flush().unwrap();
        assert_eq!(writer.finish().unwrap().written, bytes);
    }

    #[test]
    fn a_failed_write_is_reported_with_its_cause() {
        let mut writer = BackgroundWriter::new(Filling {
            written: Vec::new(),
            room: BUFFER_BYTES / 2,
        });
        let chunk = pattern(BUFFER_BYTES / 4);
        let failed = (0..64).find_map(|_| writer.write_all(&chunk).err());
        let error = failed.or_else(|| writer.finish().err()).unwrap();
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    }
}
