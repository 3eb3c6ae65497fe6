//! The write-ahead journal: accepted batches appended to segment files, fsynced per policy
//! with group commit, read back with checksums at start.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::StoreError;

const MAGIC: &[u8; 4] = b"CDRJ";
/// magic, payload length, CRC-32 of seq + payload, seq.
const HEADER: usize = 4 + 4 + 4 + 8;
const VERSION: u8 = 1;
/// Larger than any accepted body plus its metadata; guards the reader against garbage lengths.
const MAX_ENTRY: usize = 1 << 30;

/// When appended batches reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before answering 200 (concurrent requests share one fsync).
    Always,
    /// fsync at most this often; a power loss can lose the last interval.
    Interval(Duration),
    /// Leave it to the OS; a power loss can lose what the page cache held.
    Never,
}

/// One accepted batch as journaled: the raw body and what `apply` needs beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    pub seq: u64,
    /// The exporter's clock when the batch was accepted (Unix seconds).
    pub received_at: f64,
    pub peer: Option<IpAddr>,
    pub query_call_bridge: Option<String>,
    pub body: Vec<u8>,
}

fn encode_entry(
    out: &mut Vec<u8>,
    seq: u64,
    received_at: f64,
    peer: Option<IpAddr>,
    query: Option<&str>,
    body: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0; 8]); // length and CRC, filled in below
    out.extend_from_slice(&seq.to_le_bytes());
    let payload_start = out.len();
    out.push(VERSION);
    out.extend_from_slice(&received_at.to_le_bytes());
    match peer {
        None => out.push(0),
        Some(IpAddr::V4(a)) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        Some(IpAddr::V6(a)) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
    let q = query.unwrap_or("").as_bytes();
    let q = &q[..q.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(q.len() as u16).to_le_bytes());
    out.push(query.is_some() as u8);
    out.extend_from_slice(q);
    out.extend_from_slice(body);
    let len = (out.len() - payload_start) as u32;
    let crc = crc32fast::hash(&out[start + 12..]);
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

fn decode_payload(seq: u64, p: &[u8]) -> Option<JournalEntry> {
    let (&ver, rest) = p.split_first()?;
    if ver != VERSION || rest.len() < 8 {
        return None;
    }
    let received_at = f64::from_le_bytes(rest[..8].try_into().ok()?);
    let rest = &rest[8..];
    let (&tag, mut rest) = rest.split_first()?;
    let peer = match tag {
        0 => None,
        4 if rest.len() >= 4 => {
            let a: [u8; 4] = rest[..4].try_into().ok()?;
            rest = &rest[4..];
            Some(IpAddr::from(a))
        }
        6 if rest.len() >= 16 => {
            let a: [u8; 16] = rest[..16].try_into().ok()?;
            rest = &rest[16..];
            Some(IpAddr::from(a))
        }
        _ => return None,
    };
    if rest.len() < 3 {
        return None;
    }
    let qlen = u16::from_le_bytes([rest[0], rest[1]]) as usize;
    let has_q = rest[2] == 1;
    let rest = &rest[3..];
    if rest.len() < qlen {
        return None;
    }
    let query_call_bridge = has_q.then(|| String::from_utf8_lossy(&rest[..qlen]).into_owned());
    Some(JournalEntry {
        seq,
        received_at,
        peer,
        query_call_bridge,
        body: rest[qlen..].to_vec(),
    })
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

/// What reading the journal found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Entries passed to the callback (after `after_seq`).
    pub replayed: u64,
    /// Entries at or before `after_seq`, already in the snapshot.
    pub skipped: u64,
    /// Bytes of torn or corrupt data discarded (a crash during a write leaves some).
    pub corrupt_bytes: u64,
    /// Segments where corruption was found.
    pub corrupt_segments: Vec<PathBuf>,
    /// Highest sequence number seen.
    pub last_seq: u64,
}

/// Reads every valid entry in order. A segment is read up to its first bad entry; the rest
/// of it is reported (and cut off, so new appends never follow garbage).
pub fn read(
    dir: &Path,
    after_seq: u64,
    mut f: impl FnMut(JournalEntry),
) -> Result<ReadReport, StoreError> {
    let mut report = ReadReport {
        last_seq: after_seq,
        ..Default::default()
    };
    for (_, path) in segments(dir)? {
        let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        // Bound by the size at open: a symlink to a device must not read forever.
        let size = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        let mut data = Vec::with_capacity(size as usize);
        file.take(size)
            .read_to_end(&mut data)
            .map_err(|e| StoreError::io(&path, e))?;
        let mut pos = 0usize;
        while pos < data.len() {
            let Some((seq, payload, next)) = next_entry(&data, pos) else {
                break;
            };
            match decode_payload(seq, payload) {
                Some(entry) => {
                    report.last_seq = report.last_seq.max(seq);
                    if seq > after_seq {
                        report.replayed += 1;
                        f(entry);
                    } else {
                        report.skipped += 1;
                    }
                }
                None => break,
            }
            pos = next;
        }
        if pos < data.len() {
            report.corrupt_bytes += (data.len() - pos) as u64;
            report.corrupt_segments.push(path.clone());
            tracing::warn!(segment = %path.display(), offset = pos, bytes = data.len() - pos, "journal: torn or corrupt data after the last valid entry discarded");
            if let Ok(f) = OpenOptions::new().write(true).open(&path) {
                let _ = f.set_len(pos as u64);
                let _ = f.sync_all();
            }
        }
    }
    Ok(report)
}

fn next_entry(data: &[u8], pos: usize) -> Option<(u64, &[u8], usize)> {
    let h = data.get(pos..pos + HEADER)?;
    if &h[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(h[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(h[8..12].try_into().ok()?);
    if len > MAX_ENTRY {
        return None;
    }
    let end = pos + HEADER + len;
    let covered = data.get(pos + 12..end)?;
    if crc32fast::hash(covered) != crc {
        return None;
    }
    let seq = u64::from_le_bytes(h[12..20].try_into().ok()?);
    Some((seq, &data[pos + HEADER..end], end))
}

/// Deletes segments whose entries are all at or before `upto_seq` (covered by a snapshot).
/// The newest segment always stays.
pub fn prune(dir: &Path, upto_seq: u64) -> Result<usize, StoreError> {
    let segs = segments(dir)?;
    let mut removed = 0;
    for w in segs.windows(2) {
        // Segment w[0] holds seqs [w[0].0, w[1].0).
        if w[1].0 <= upto_seq + 1 {
            fs::remove_file(&w[0].1).map_err(|e| StoreError::io(&w[0].1, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

enum Msg {
    Append {
        received_at: f64,
        peer: Option<IpAddr>,
        query: Option<String>,
        body: bytes::Bytes,
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

    /// Appends a batch; resolves once it is written (and fsynced under `Always`).
    pub async fn append(
        &self,
        received_at: f64,
        peer: Option<IpAddr>,
        query: Option<String>,
        body: bytes::Bytes,
    ) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Append {
                received_at,
                peer,
                query,
                body,
                reply,
            })
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

/// An append waiting for the group commit: time, peer, query, body, where to answer.
type PendingAppend = (
    f64,
    Option<IpAddr>,
    Option<String>,
    bytes::Bytes,
    oneshot::Sender<Result<u64, StoreError>>,
);

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
            let mut appends = Vec::with_capacity(group.len());
            for m in group {
                match m {
                    Msg::Append {
                        received_at,
                        peer,
                        query,
                        body,
                        reply,
                    } => appends.push((received_at, peer, query, body, reply)),
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

    fn commit(&mut self, appends: Vec<PendingAppend>) {
        if appends.is_empty() {
            return;
        }
        let first_seq = self.next_seq;
        self.buf.clear();
        for (i, (t, peer, q, body, _)) in appends.iter().enumerate() {
            encode_entry(
                &mut self.buf,
                first_seq + i as u64,
                *t,
                *peer,
                q.as_deref(),
                body,
            );
        }
        let result = self.write_group();
        match result {
            Ok(()) => {
                let n = appends.len() as u64;
                self.next_seq += n;
                self.last.store(self.next_seq - 1, Ordering::Release);
                self.stats.appends.fetch_add(n, Ordering::Relaxed);
                self.stats
                    .bytes
                    .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
                for (i, (.., reply)) in appends.into_iter().enumerate() {
                    let _ = reply.send(Ok(first_seq + i as u64));
                }
                if self.seg_len >= self.segment_max_bytes {
                    let _ = self.rotate();
                }
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "journal write failed: answering 503 so the Call Bridge retries");
                for (.., reply) in appends {
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
                // Cut off a partial write; if even that fails, start a new segment next time.
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

    #[tokio::test]
    async fn append_read_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().to_owned(), 0, FsyncPolicy::Always, 1 << 20).unwrap();
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        for i in 0..5u8 {
            let seq = j
                .append(
                    1.5,
                    Some(peer),
                    Some("cms1".into()),
                    bytes::Bytes::from(vec![b'a' + i; 100]),
                )
                .await
                .unwrap();
            assert_eq!(seq, i as u64 + 1);
        }
        drop(j);
        // A crash mid-write: half an entry at the end.
        let (_, seg) = segments(dir.path()).unwrap().pop().unwrap();
        let mut extra = Vec::new();
        encode_entry(&mut extra, 6, 2.0, None, None, b"torn");
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&extra[..extra.len() / 2]).unwrap();
        drop(f);
        let mut got = Vec::new();
        let r = read(dir.path(), 2, |e| got.push(e)).unwrap();
        assert_eq!((r.replayed, r.skipped, r.last_seq), (3, 2, 5));
        assert_eq!(r.corrupt_bytes as usize, extra.len() / 2);
        assert_eq!(got[0].seq, 3);
        assert_eq!(got[0].peer, Some(peer));
        assert_eq!(got[0].query_call_bridge.as_deref(), Some("cms1"));
        assert_eq!(got[0].body, vec![b'c'; 100]);
        // The torn tail was cut: a second read finds no corruption.
        let r = read(dir.path(), 0, |_| {}).unwrap();
        assert_eq!((r.replayed, r.corrupt_bytes), (5, 0));
    }

    #[tokio::test]
    async fn a_flipped_bit_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().to_owned(), 10, FsyncPolicy::Never, 1 << 20).unwrap();
        j.append(1.0, None, None, bytes::Bytes::from_static(b"one"))
            .await
            .unwrap();
        j.append(1.0, None, None, bytes::Bytes::from_static(b"two"))
            .await
            .unwrap();
        drop(j);
        let (_, seg) = segments(dir.path()).unwrap().pop().unwrap();
        let mut data = fs::read(&seg).unwrap();
        let n = data.len();
        data[n - 1] ^= 0x40;
        fs::write(&seg, data).unwrap();
        let mut got = Vec::new();
        let r = read(dir.path(), 0, |e| got.push(e.body)).unwrap();
        assert_eq!(got, vec![b"one".to_vec()]);
        assert_eq!(r.corrupt_segments.len(), 1);
    }

    #[tokio::test]
    async fn rotation_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().to_owned(), 0, FsyncPolicy::Never, 1 << 20).unwrap();
        for _ in 0..3 {
            j.append(1.0, None, None, bytes::Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        j.rotate().await.unwrap();
        j.append(1.0, None, None, bytes::Bytes::from_static(b"y"))
            .await
            .unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 2);
        assert_eq!(prune(dir.path(), 2).unwrap(), 0, "seq 3 is not covered yet");
        assert_eq!(prune(dir.path(), 3).unwrap(), 1);
        let mut seqs = Vec::new();
        read(dir.path(), 0, |e| seqs.push(e.seq)).unwrap();
        assert_eq!(seqs, vec![4]);
    }

    #[tokio::test]
    async fn write_failure_is_an_error_not_a_lie() {
        let dir = tempfile::tempdir().unwrap();
        // /dev/full fails every write with ENOSPC, like a full disk.
        std::os::unix::fs::symlink("/dev/full", dir.path().join(segment_name(1))).unwrap();
        let j = Journal::open(dir.path().to_owned(), 0, FsyncPolicy::Always, 1 << 20).unwrap();
        let e = j
            .append(1.0, None, None, bytes::Bytes::from_static(b"x"))
            .await;
        assert!(e.is_err());
        assert_eq!(j.last_seq(), 0);
    }
}
