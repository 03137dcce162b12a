//! The history file: JSON lines, one [`Record`] each, appended to `file` and rotated by size
//! (`file` → `file.1` → … → `file.<keep>`, the oldest removed). The same files are the spool
//! the PostgreSQL sender reads from ([`Spool`]), so what waits for the database is bounded by
//! the rotation too: `max_size × (keep + 1)`.
//!
//! Files are created owner-only (0600): they name every subscriber's MAC and line.
use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use super::{LeaseEvent, Record};

/// Where the files are and how far they may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub path: PathBuf,
    /// Rotate before a write would take the file past this many bytes.
    pub max_size: u64,
    /// Rotated files kept besides the one written.
    pub keep: u32,
}

impl Rotation {
    /// The `n`th rotated file; 0 is the one written.
    #[must_use]
    pub fn nth(&self, n: u32) -> PathBuf {
        if n == 0 {
            return self.path.clone();
        }
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    /// Every file there is, oldest first.
    #[must_use]
    pub fn files(&self) -> Vec<PathBuf> {
        (0..=self.keep).rev().map(|n| self.nth(n)).filter(|p| p.exists()).collect()
    }

    /// Where the PostgreSQL sender keeps the sequence number it has sent up to.
    #[must_use]
    pub fn cursor_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".cursor");
        p.into()
    }
}

fn create_owner_only(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// The writer's side: appends records, numbering them on from the last one written.
pub struct HistoryFile {
    rot: Rotation,
    node: String,
    file: Option<File>,
    size: u64,
    /// The sequence number of the next record; 0 until the files were read.
    next_seq: u64,
}

impl HistoryFile {
    /// Nothing is opened yet: [`HistoryFile::append`] opens (and retries opening) the file, so
    /// that a history that cannot be written never stops the server.
    #[must_use]
    pub fn new(rot: Rotation, node: &str) -> Self {
        Self { rot, node: node.to_owned(), file: None, size: 0, next_seq: 0 }
    }

    /// The sequence number of the last record written (0: none yet).
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    /// Opens the file now (it is opened on the first append otherwise): the daemon says at
    /// start whether its history can be written.
    pub fn open(&mut self) -> io::Result<()> {
        if self.file.is_some() {
            return Ok(());
        }
        if self.next_seq == 0 {
            // The last record of the newest file that has one; the cursor too, in case every
            // file was removed: numbers are never given out twice.
            let last = self.rot.files().iter().rev().find_map(|p| last_seq(p).ok().flatten());
            let sent = read_cursor(&self.rot.cursor_path()).unwrap_or(0);
            self.next_seq = last.unwrap_or(0).max(sent) + 1;
        }
        let mut f = create_owner_only(&self.rot.path)?;
        self.size = f.metadata()?.len();
        // A write torn by a crash: the next record starts on a line of its own.
        if self.size > 0 {
            let mut r = File::open(&self.rot.path)?;
            r.seek(SeekFrom::Start(self.size - 1))?;
            let mut b = [0u8];
            r.read_exact(&mut b)?;
            if b[0] != b'\n' {
                f.write_all(b"\n")?;
                self.size += 1;
            }
        }
        self.file = Some(f);
        Ok(())
    }

    /// Appends `events` in one write, rotating first when they would not fit. On an error the
    /// file is opened again on the next call; the events are not written.
    pub fn append(&mut self, events: Vec<LeaseEvent>) -> io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let r = self.try_append(events);
        if r.is_err() {
            self.file = None;
        }
        r
    }

    fn try_append(&mut self, events: Vec<LeaseEvent>) -> io::Result<()> {
        self.open()?;
        let mut buf = Vec::with_capacity(events.len() * 256);
        let mut seq = self.next_seq;
        for e in events {
            serde_json::to_writer(&mut buf, &Record::new(&self.node, seq, e))?;
            buf.push(b'\n');
            seq += 1;
        }
        if self.size > 0 && self.size + buf.len() as u64 > self.rot.max_size {
            self.rotate()?;
        }
        let f = self.file.as_mut().ok_or_else(|| io::Error::other("history file not open"))?;
        f.write_all(&buf)?;
        self.size += buf.len() as u64;
        self.next_seq = seq;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.rot.keep == 0 {
            fs::remove_file(&self.rot.path)?;
        } else {
            let _ = fs::remove_file(self.rot.nth(self.rot.keep));
            for n in (0..self.rot.keep).rev() {
                let from = self.rot.nth(n);
                if from.exists() {
                    fs::rename(&from, self.rot.nth(n + 1))?;
                }
            }
        }
        self.file = Some(create_owner_only(&self.rot.path)?);
        self.size = 0;
        Ok(())
    }
}

/// The sequence number of the last whole record in `path`.
fn last_seq(path: &Path) -> io::Result<Option<u64>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    // Records are well under a kilobyte: the last 64 KiB hold the last whole one.
    f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    Ok(tail
        .split(|b| *b == b'\n')
        .rev()
        .find_map(|l| serde_json::from_slice::<Record>(l).ok())
        .map(|r| r.seq))
}

fn first_seq(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    BufReader::new(f)
        .lines()
        .take(16)
        .map_while(Result::ok)
        .find_map(|l| serde_json::from_str::<Record>(&l).ok())
        .map(|r| r.seq)
}

/// The last sequence number PostgreSQL has taken, as persisted.
#[must_use]
pub fn read_cursor(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Persists the cursor: a new file renamed over the old, so a crash leaves one or the other.
pub fn write_cursor(path: &Path, seq: u64) -> io::Result<()> {
    let mut tmp = path.to_owned().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f =
            OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
        writeln!(f, "{seq}")?;
        f.sync_data()?;
    }
    fs::rename(&tmp, path)
}

/// Every record of the files, oldest first: what `xdhcp history --file` searches. Lines that do
/// not read as records (a torn write) are skipped.
pub fn read_all(rot: &Rotation) -> io::Result<Vec<Record>> {
    let mut out = Vec::new();
    for p in rot.files() {
        let f = File::open(&p)?;
        for line in BufReader::new(f).lines() {
            if let Ok(r) = serde_json::from_str::<Record>(&line?) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// The sender's side: reads the records after a sequence number, following the file through
/// its rotations as `tail -F` would.
pub struct Spool {
    rot: Rotation,
    reading: Option<(BufReader<File>, u64)>,
    /// Records that rotated away before they were read (the spool was full).
    pub lost: u64,
    /// The last sequence number counted in `lost`: a gap is counted once, however often the
    /// spool is read from before it.
    lost_to: u64,
}

impl Spool {
    #[must_use]
    pub fn new(rot: Rotation) -> Self {
        Self { rot, reading: None, lost: 0, lost_to: 0 }
    }

    /// Opens the file that holds the record after `after`: the newest whose first record is not
    /// beyond it. If even the oldest starts beyond it, what lay between has rotated away.
    fn locate(&mut self, after: u64) -> io::Result<()> {
        let files: Vec<_> = self.rot.files().into_iter().map(|p| (first_seq(&p), p)).collect();
        let pick = files
            .iter()
            .rev()
            .find(|(s, _)| s.is_some_and(|s| s <= after + 1))
            .or_else(|| files.iter().find(|(s, _)| s.is_some()))
            .or_else(|| files.last());
        let Some((first, p)) = pick else { return Ok(()) };
        if let Some(s) = *first
            && s > after.max(self.lost_to) + 1
        {
            self.lost += s - after.max(self.lost_to) - 1;
            self.lost_to = s - 1;
        }
        let f = File::open(p)?;
        let ino = f.metadata()?.ino();
        self.reading = Some((BufReader::new(f), ino));
        Ok(())
    }

    /// What was read is to be read again: the batch did not get where it was going. The next
    /// [`Spool::next_batch`] starts from its `after` in the files.
    pub fn rewind(&mut self) {
        self.reading = None;
    }

    /// Up to `max` records after sequence number `after`, in order; none when there is nothing
    /// new yet.
    pub fn next_batch(&mut self, after: u64, max: usize) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut after = after;
        // A file rotated while read: drained, then the next one; bounded by the files there are.
        for _ in 0..=self.rot.keep + 1 {
            if self.reading.is_none() {
                self.locate(after)?;
            }
            let Some((r, ino)) = &mut self.reading else { return Ok(out) };
            read_records(r, after, max - out.len(), &mut out)?;
            if let Some(l) = out.last() {
                after = l.seq;
            }
            if out.len() >= max {
                return Ok(out);
            }
            let current = fs::metadata(&self.rot.path).map(|m| m.ino()).ok();
            if current == Some(*ino) {
                return Ok(out);
            }
            // Ours was rotated away: what the writer added before it moved on, then the next.
            read_records(r, after, max - out.len(), &mut out)?;
            if let Some(l) = out.last() {
                after = l.seq;
            }
            if out.len() >= max {
                return Ok(out);
            }
            self.reading = None;
        }
        Ok(out)
    }
}

/// Whole lines from `r` into `out` (at most `max`), skipping records up to `after`; a line not
/// yet complete is left for the next read.
fn read_records(
    r: &mut BufReader<File>,
    after: u64,
    max: usize,
    out: &mut Vec<Record>,
) -> io::Result<()> {
    let mut line = String::new();
    let mut taken = 0;
    while taken < max {
        line.clear();
        let n = r.read_line(&mut line)?;
        if n == 0 {
            break;
        }
        if !line.ends_with('\n') {
            r.seek_relative(-i64::try_from(n).unwrap_or(0))?;
            break;
        }
        if let Ok(rec) = serde_json::from_str::<Record>(&line)
            && rec.seq > after
        {
            out.push(rec);
            taken += 1;
        }
    }
    Ok(())
}
