//! The write-ahead journal: accepted entries appended to segment files, fsynced per policy
//! with group commit, read back at start with checksums, skipping and counting damage.
//!
//! Segment `NNNN.wal` holds entries from seq NNNN on. Each entry:
//! `MAGIC | payload length u32 | CRC-32 of (seq, payload) u32 | seq u64 | payload`, where the
//! payload is `VERSION | meta length u32 | meta | body`. The store does not interpret `meta` or
//! `body`: the pipeline says what they mean.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::StoreError;

const MAGIC: &[u8; 4] = b"CDRJ";
/// magic, payload length, CRC-32 of seq + payload, seq.
const HEADER: usize = 4 + 4 + 4 + 8;
const VERSION: u8 = 2;
/// Larger than any accepted body plus its metadata; guards the reader against garbage lengths.
const MAX_ENTRY: usize = 1 << 30;
/// Segments with damage are moved here when they are no longer needed, never deleted.
pub const DAMAGED_DIR: &str = "damaged";
/// Damaged segments kept for diagnosis; the oldest go beyond this.
const DAMAGED_KEEP: usize = 16;

/// When appended entries reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before answering (concurrent appends share one fsync).
    Always,
    /// fsync at most this often; a power loss can lose the last interval.
    Interval(Duration),
    /// Leave it to the OS; a power loss can lose what the page cache held.
    Never,
}

/// One journal entry: opaque metadata and the body it describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub meta: Bytes,
    pub body: Bytes,
}

fn encode_entry(out: &mut Vec<u8>, seq: u64, e: &Entry) {
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0; 8]); // length and CRC, filled in below
    out.extend_from_slice(&seq.to_le_bytes());
    let payload_start = out.len();
    out.push(VERSION);
    out.extend_from_slice(&(e.meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&e.meta);
    out.extend_from_slice(&e.body);
    let len = (out.len() - payload_start) as u32;
    let crc = crc32fast::hash(&out[start + 12..]);
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// The entry at `pos`, if a valid one starts there: (seq, entry, end offset).
fn entry_at(data: &Bytes, pos: usize) -> Option<(u64, Entry, usize)> {
    let h = data.get(pos..pos + HEADER)?;
    if &h[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(h[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(h[8..12].try_into().ok()?);
    if len > MAX_ENTRY {
        return None;
    }
    let end = pos.checked_add(HEADER + len)?;
    if crc32fast::hash(data.get(pos + 12..end)?) != crc {
        return None;
    }
    let seq = u64::from_le_bytes(h[12..20].try_into().ok()?);
    let p = pos + HEADER;
    if data[p] != VERSION || len < 5 {
        return None;
    }
    let meta_len = u32::from_le_bytes(data[p + 1..p + 5].try_into().ok()?) as usize;
    let meta_end = (p + 5).checked_add(meta_len).filter(|m| *m <= end)?;
    Some((
        seq,
        Entry {
            meta: data.slice(p + 5..meta_end),
            body: data.slice(meta_end..end),
        },
        end,
    ))
}

/// The next offset after `from` where a valid entry starts (resynchronisation after damage).
fn resync(data: &Bytes, from: usize) -> Option<usize> {
    let finder = memchr::memmem::Finder::new(MAGIC);
    let mut at = from;
    while let Some(i) = finder.find(&data[at..]) {
        let cand = at + i;
        if entry_at(data, cand).is_some() {
            return Some(cand);
        }
        at = cand + 1;
    }
    None
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

/// Segment files in `dir`, sorted by their first sequence number.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut v = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for e in rd {
        let e = e.map_err(|e| StoreError::io(dir, e))?;
        let name = e.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            v.push((seq, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

/// A stretch of a segment that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
}

/// What reading the journal found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Entries passed to the callback (after `after_seq`).
    pub replayed: u64,
    /// Entries at or before `after_seq`, already in the snapshot.
    pub skipped: u64,
    /// Bytes that were not a valid entry (torn writes, flipped bits), skipped over.
    pub corrupt_bytes: u64,
    /// Sequence numbers after `after_seq` that no readable entry holds: lost entries. A gap
    /// between `after_seq` and the first entry counts too (a pruned or damaged journal).
    pub lost_entries: u64,
    /// Where the damage is; those segments are moved aside, not deleted, once pruned.
    pub damage: Vec<Damage>,
    /// Lowest sequence number seen (0 if none).
    pub first_seq: u64,
    /// Highest sequence number seen, at least `after_seq`.
    pub last_seq: u64,
}

impl ReadReport {
    /// Segments with damage, each once.
    pub fn damaged_segments(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.damage.iter().map(|d| d.segment.clone()).collect();
        v.dedup();
        v
    }
}

/// Reads every valid entry in sequence order and passes those after `after_seq` to `f`.
/// Damage is skipped (the reader resynchronises on the next valid entry) and reported;
/// nothing is truncated or deleted.
pub fn read(
    dir: &Path,
    after_seq: u64,
    mut f: impl FnMut(u64, Entry),
) -> Result<ReadReport, StoreError> {
    let mut report = ReadReport {
        last_seq: after_seq,
        ..Default::default()
    };
    // The next seq we expect to replay; anything missing before a later one is lost.
    let mut expect = after_seq + 1;
    for (_, path) in segments(dir)? {
        let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        // Bound by the size at open: a symlink to a device must not read forever.
        let size = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        let mut buf = Vec::with_capacity(size as usize);
        file.take(size)
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::io(&path, e))?;
        let data = Bytes::from(buf);
        let mut pos = 0usize;
        while pos < data.len() {
            let Some((seq, entry, next)) = entry_at(&data, pos) else {
                let to = resync(&data, pos + 1).unwrap_or(data.len());
                report.corrupt_bytes += (to - pos) as u64;
                report.damage.push(Damage {
                    segment: path.clone(),
                    offset: pos as u64,
                    bytes: (to - pos) as u64,
                });
                tracing::warn!(segment = %path.display(), offset = pos, bytes = to - pos, "journal: unreadable bytes skipped");
                pos = to;
                continue;
            };
            if report.first_seq == 0 || seq < report.first_seq {
                report.first_seq = seq;
            }
            report.last_seq = report.last_seq.max(seq);
            if seq > after_seq {
                if seq > expect {
                    report.lost_entries += seq - expect;
                }
                expect = expect.max(seq + 1);
                report.replayed += 1;
                f(seq, entry);
            } else {
                report.skipped += 1;
            }
            pos = next;
        }
    }
    Ok(report)
}

/// Deletes segments whose entries are all at or before `upto_seq` (covered by every snapshot
/// that may be loaded). Segments in `damaged` are moved to `damaged/` instead. The newest
/// segment always stays.
pub fn prune(dir: &Path, upto_seq: u64, damaged: &[PathBuf]) -> Result<usize, StoreError> {
    let segs = segments(dir)?;
    let mut removed = 0;
    for w in segs.windows(2) {
        // Segment w[0] holds seqs [w[0].0, w[1].0).
        if w[1].0 <= upto_seq + 1 {
            if damaged.contains(&w[0].1) {
                move_aside(dir, &w[0].1)?;
            } else {
                fs::remove_file(&w[0].1).map_err(|e| StoreError::io(&w[0].1, e))?;
            }
            removed += 1;
        }
    }
    Ok(removed)
}

/// Moves a damaged file into `<dir>/damaged/`, keeping the newest [`DAMAGED_KEEP`] there.
pub fn move_aside(dir: &Path, file: &Path) -> Result<PathBuf, StoreError> {
    let to_dir = dir.join(DAMAGED_DIR);
    fs::create_dir_all(&to_dir).map_err(|e| StoreError::io(&to_dir, e))?;
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let to = to_dir.join(format!("{stamp}-{name}"));
    fs::rename(file, &to).map_err(|e| StoreError::io(file, e))?;
    let mut kept: Vec<PathBuf> = fs::read_dir(&to_dir)
        .map_err(|e| StoreError::io(&to_dir, e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    kept.sort();
    let excess = kept.len().saturating_sub(DAMAGED_KEEP);
    for old in &kept[..excess] {
        let _ = fs::remove_file(old);
        tracing::warn!(file = %old.display(), "damaged file removed: more than {DAMAGED_KEEP} are kept");
    }
    tracing::warn!(from = %file.display(), to = %to.display(), "damaged file moved aside");
    Ok(to)
}

enum Msg {
    Append {
        entry: Entry,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Closes the current segment so a snapshot can prune it later.
    Rotate {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// Counters the writer keeps, for metrics.
#[derive(Debug, Default)]
pub struct JournalStats {
    pub appends: AtomicU64,
    pub bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub errors: AtomicU64,
    /// Sum of fsync durations, in nanoseconds.
    pub fsync_nanos: AtomicU64,
}

/// Handle to the journal writer thread.
pub struct Journal {
    tx: mpsc::Sender<Msg>,
    last_seq: Arc<AtomicU64>,
    pub stats: Arc<JournalStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Journal {
    /// Starts the writer; new entries go to a new segment starting at `last_seq + 1`.
    pub fn open(
        dir: PathBuf,
        last_seq: u64,
        policy: FsyncPolicy,
        segment_max_bytes: u64,
    ) -> Result<Journal, StoreError> {
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        // A file already named for the next segment holds no readable entry (else last_seq
        // would be past it): only a torn write. Appending after it would bury new entries
        // behind garbage, so it goes aside.
        let next = dir.join(segment_name(last_seq + 1));
        if fs::metadata(&next).is_ok_and(|m| m.is_file() && m.len() > 0) {
            move_aside(&dir, &next)?;
        }
        let (tx, rx) = mpsc::channel();
        let last = Arc::new(AtomicU64::new(last_seq));
        let stats = Arc::new(JournalStats::default());
        let mut w = Writer {
            dir,
            file: None,
            seg_len: 0,
            next_seq: last_seq + 1,
            policy,
            segment_max_bytes,
            dirty: false,
            last_sync: Instant::now(),
            last: last.clone(),
            stats: stats.clone(),
            buf: Vec::with_capacity(64 * 1024),
        };
        // Fail at start, not at the first batch, if the directory is unusable.
        w.ensure_file()?;
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || w.run(rx))
            .map_err(|e| StoreError::io(Path::new("journal thread"), e))?;
        Ok(Journal {
            tx,
            last_seq: last,
            stats,
            thread: Some(thread),
        })
    }

    /// Appends an entry; resolves with its seq once written (and fsynced under `Always`).
    pub async fn append(&self, entry: Entry) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Append { entry, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Closes the current segment (the next append starts a new one).
    pub async fn rotate(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Rotate { reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The sequence number of the newest entry written.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it flushes what it has.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Writer {
    dir: PathBuf,
    file: Option<File>,
    seg_len: u64,
    next_seq: u64,
    policy: FsyncPolicy,
    segment_max_bytes: u64,
    dirty: bool,
    last_sync: Instant,
    last: Arc<AtomicU64>,
    stats: Arc<JournalStats>,
    buf: Vec<u8>,
}

/// An append waiting for the group commit.
type Pending = (Entry, oneshot::Sender<Result<u64, StoreError>>);

/// Appends taken together into one write and one fsync.
const GROUP_MAX: usize = 512;

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let tick = match self.policy {
            FsyncPolicy::Interval(d) => d.max(Duration::from_millis(1)),
            _ => Duration::from_secs(3600),
        };
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.interval_sync();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut group = vec![first];
            while group.len() < GROUP_MAX {
                match rx.try_recv() {
                    Ok(m) => group.push(m),
                    Err(_) => break,
                }
            }
            let mut appends: Vec<Pending> = Vec::with_capacity(group.len());
            for m in group {
                match m {
                    Msg::Append { entry, reply } => appends.push((entry, reply)),
                    Msg::Rotate { reply } => {
                        self.commit(std::mem::take(&mut appends));
                        let r = self.rotate();
                        let _ = reply.send(r);
                    }
                }
            }
            self.commit(appends);
            self.interval_sync();
        }
        if self.dirty {
            if let Some(f) = &self.file {
                let _ = f.sync_data();
            }
        }
    }

    fn ensure_file(&mut self) -> Result<&mut File, StoreError> {
        if self.file.is_none() {
            let path = self.dir.join(segment_name(self.next_seq));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| StoreError::io(&path, e))?;
            self.seg_len = f.metadata().map(|m| m.len()).unwrap_or(0);
            // Make the new file's directory entry durable too.
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
            self.file = Some(f);
        }
        Ok(self.file.as_mut().expect("just opened"))
    }

    fn commit(&mut self, appends: Vec<Pending>) {
        if appends.is_empty() {
            return;
        }
        let first_seq = self.next_seq;
        self.buf.clear();
        for (i, (entry, _)) in appends.iter().enumerate() {
            encode_entry(&mut self.buf, first_seq + i as u64, entry);
        }
        match self.write_group() {
            Ok(()) => {
                let n = appends.len() as u64;
                self.next_seq += n;
                self.last.store(self.next_seq - 1, Ordering::Release);
                self.stats.appends.fetch_add(n, Ordering::Relaxed);
                self.stats
                    .bytes
                    .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
                for (i, (_, reply)) in appends.into_iter().enumerate() {
                    let _ = reply.send(Ok(first_seq + i as u64));
                }
                if self.seg_len >= self.segment_max_bytes {
                    let _ = self.rotate();
                }
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "journal write failed: answering 503 so the sender retries");
                for (_, reply) in appends {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn write_group(&mut self) -> Result<(), StoreError> {
        let policy = self.policy;
        let before = self.seg_len;
        let dir = self.dir.clone();
        let buf = std::mem::take(&mut self.buf);
        let res = (|| {
            let f = self.ensure_file()?;
            f.write_all(&buf).map_err(|e| StoreError::io(&dir, e))?;
            if policy == FsyncPolicy::Always {
                let t = Instant::now();
                f.sync_data().map_err(|e| StoreError::io(&dir, e))?;
                self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .fsync_nanos
                    .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                self.last_sync = Instant::now();
            } else {
                self.dirty = true;
            }
            Ok(())
        })();
        match &res {
            Ok(()) => self.seg_len += buf.len() as u64,
            Err(_) => {
                // Our own partial write (nothing of it was acknowledged) is cut off; if even
                // that fails, start a new segment next time.
                let ok = self
                    .file
                    .as_ref()
                    .map(|f| f.set_len(before).is_ok())
                    .unwrap_or(false);
                if !ok {
                    self.file = None;
                }
            }
        }
        self.buf = buf;
        res
    }

    fn interval_sync(&mut self) {
        if let FsyncPolicy::Interval(d) = self.policy {
            if self.dirty && self.last_sync.elapsed() >= d {
                if let Some(f) = &self.file {
                    let t = Instant::now();
                    if f.sync_data().is_ok() {
                        self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                        self.stats
                            .fsync_nanos
                            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        self.dirty = false;
                    }
                }
                self.last_sync = Instant::now();
            }
        }
    }

    fn rotate(&mut self) -> Result<(), StoreError> {
        if let Some(f) = self.file.take() {
            if self.dirty || self.policy != FsyncPolicy::Always {
                f.sync_data().map_err(|e| StoreError::io(&self.dir, e))?;
                self.dirty = false;
            }
            if self.seg_len == 0 {
                // Nothing was written: keep using the empty file (same name).
                self.file = Some(f);
                return Ok(());
            }
        }
        self.seg_len = 0;
        self.ensure_file().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(meta: &'static [u8], body: Vec<u8>) -> Entry {
        Entry {
            meta: Bytes::from_static(meta),
            body: Bytes::from(body),
        }
    }

    fn read_all(dir: &Path, after: u64) -> (Vec<(u64, Entry)>, ReadReport) {
        let mut got = Vec::new();
        let r = read(dir, after, |s, e| got.push((s, e))).unwrap();
        (got, r)
    }

    #[tokio::test]
    async fn append_read_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().to_owned(), 0, FsyncPolicy::Always, 1 << 20).unwrap();
        for i in 0..5u8 {
            let seq = j.append(entry(b"cms1", vec![b'a' + i; 100])).await.unwrap();
            assert_eq!(seq, i as u64 + 1);
        }
        drop(j);
        // A crash mid-write: half an entry at the end.
        let (_, seg) = segments(dir.path()).unwrap().pop().unwrap();
        let mut extra = Vec::new();
        encode_entry(&mut extra, 6, &entry(b"", b"torn".to_vec()));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&extra[..extra.len() / 2]).unwrap();
        drop(f);
        let (got, r) = read_all(dir.path(), 2);
        assert_eq!((r.replayed, r.skipped, r.last_seq), (3, 2, 5));
        assert_eq!(r.corrupt_bytes as usize, extra.len() / 2);
        assert_eq!(r.lost_entries, 0, "a torn tail was never acknowledged");
        assert_eq!(got[0].0, 3);
        assert_eq!(&got[0].1.meta[..], b"cms1");
        assert_eq!(&got[0].1.body[..], &[b'c'; 100][..]);
        // Nothing was cut: the same bytes are there on a second read.
        let (_, r2) = read_all(dir.path(), 0);
        assert_eq!((r2.replayed, r2.corrupt_bytes), (5, r.corrupt_bytes));
    }

    #[tokio::test]
    async fn a_flipped_byte_mid_journal_loses_only_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().to_owned(), 10, FsyncPolicy::Never, 1 << 20).unwrap();
        for i in 0..50u8 {
            j.append(entry(b"m", vec![i; 200])).await.unwrap();
        }
        drop(j);
        let (_, seg) = segments(dir.path()).unwrap().pop().unwrap();
        let mut data = fs::read(&seg).unwrap();
        let len_before = data.len();
        // Entry 20 (seq 31): flip one byte of its body.
        let one = HEADER + 1 + 4 + 1 + 200;
        data[20 * one + HEADER + 50] ^= 0x01;
        fs::write(&seg, &data).unwrap();
        let (got, r) = read_all(dir.path(), 10);
        assert_eq!(got.len(), 49);
        assert_eq!(r.lost_entries, 1);
        assert_eq!(r.corrupt_bytes as usize, one);
        assert!(got.iter().all(|(s, _)| *s != 31));
        assert_eq!(got.last().unwrap().0, 60, "every later entry is read");
        assert_eq!(fs::metadata(&seg).unwrap().len() as usize, len_before);
        // A flipped length field and a flipped magic resynchronise too.
        data[20 * one + HEADER + 50] ^= 0x01;
        data[5 * one + 5] ^= 0x80;
        data[40 * one] = b'X';
        fs::write(&seg, &data).unwrap();
        let (got, r) = read_all(dir.path(), 10);
        assert_eq!((got.len(), r.lost_entries), (48, 2));
        assert_eq!(r.damaged_segments(), vec![seg]);
    }

    #[tokio::test]
    async fn rotation_pruning_and_damaged_segments_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().to_owned(), 0, FsyncPolicy::Never, 1 << 20).unwrap();
        for _ in 0..3 {
            j.append(entry(b"", b"x".to_vec())).await.unwrap();
        }
        j.rotate().await.unwrap();
        j.append(entry(b"", b"y".to_vec())).await.unwrap();
        let segs = segments(dir.path()).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(
            prune(dir.path(), 2, &[]).unwrap(),
            0,
            "seq 3 is not covered yet"
        );
        assert_eq!(prune(dir.path(), 3, &[segs[0].1.clone()]).unwrap(), 1);
        let (got, _) = read_all(dir.path(), 0);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![4]);
        let aside: Vec<_> = fs::read_dir(dir.path().join(DAMAGED_DIR))
            .unwrap()
            .collect();
        assert_eq!(aside.len(), 1, "the damaged segment was kept, not deleted");
    }

    #[tokio::test]
    async fn a_gap_after_the_snapshot_is_reported_as_lost() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().to_owned(), 20, FsyncPolicy::Never, 1 << 20).unwrap();
        j.append(entry(b"", b"x".to_vec())).await.unwrap();
        drop(j);
        let (got, r) = read_all(dir.path(), 5);
        assert_eq!(got.len(), 1);
        assert_eq!((r.first_seq, r.lost_entries), (21, 15));
    }

    #[tokio::test]
    async fn a_torn_file_named_for_the_next_segment_goes_aside() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(segment_name(8)), b"CDRJ\x01\x02garbage").unwrap();
        let j = Journal::open(dir.path().to_owned(), 7, FsyncPolicy::Never, 1 << 20).unwrap();
        j.append(entry(b"", b"x".to_vec())).await.unwrap();
        drop(j);
        let (got, r) = read_all(dir.path(), 7);
        assert_eq!((got.len(), r.corrupt_bytes), (1, 0));
        assert_eq!(
            fs::read_dir(dir.path().join(DAMAGED_DIR)).unwrap().count(),
            1
        );
    }

    #[tokio::test]
    async fn write_failure_is_an_error_not_a_lie() {
        let dir = tempfile::tempdir().unwrap();
        // /dev/full fails every write with ENOSPC, like a full disk.
        std::os::unix::fs::symlink("/dev/full", dir.path().join(segment_name(1))).unwrap();
        let j = Journal::open(dir.path().to_owned(), 0, FsyncPolicy::Always, 1 << 20).unwrap();
        let e = j.append(entry(b"", b"x".to_vec())).await;
        assert!(e.is_err());
        assert_eq!(j.last_seq(), 0);
    }
}
