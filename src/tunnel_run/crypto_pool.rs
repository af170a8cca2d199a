//! The tunnel's ChaCha20-Poly1305 on several cores: a fixed pool of worker threads that,
//! together with the loop's own thread, seal or open one batch of data messages
//! ([`DataJob`]s) at a time. The loop records the jobs in order ([`CryptoPool::push`]),
//! [`CryptoPool::run`] does them all and returns when they are done, and the loop goes
//! on in order with their results ([`CryptoPool::opened`]). Nothing is allocated after
//! [`CryptoPool::new`]; no 64-bit atomics (32-bit mips and ARMv6 have none).
//!
//! One round: the jobs and their number are written, the round is opened (`state`) and
//! its generation (`round`) bumped, which wakes the workers (a futex); every thread
//! takes jobs by an atomic index until none is left; the loop's thread closes the round
//! (a worker that comes later stays out) and waits until the workers that joined have
//! left it. So no worker touches a job or a buffer once `run` has returned, and the jobs
//! are only written while no worker is in a round.
use crate::sys::threads::{self, futex_wait, futex_wake, Thread};
use crate::tunnel::noise::DataJob;
use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

/// Jobs per round at most (when full, the loop runs them and goes on).
pub const CAPACITY: usize = 128;
/// Smaller batches are done on the loop's thread alone: waking workers costs more than
/// a few packets (pings, TCP ACKs) take.
pub const MIN_PARALLEL: usize = 8;
/// Most threads (the loop's included) when the count is left to the number of CPUs.
pub const MAX_AUTO: usize = 8;
/// How long the loop's thread spins for the workers' last jobs before it sleeps.
const SPINS: u32 = 2_000;
/// In `state`: workers may join the round (the rest of `state` counts those in it).
const OPEN: u32 = 1 << 31;

/// The threads for `--threads N`: N, or (0) one per online CPU up to [`MAX_AUTO`].
pub fn threads_for(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        threads::online_cpus().clamp(1, MAX_AUTO)
    }
}

struct Shared {
    jobs: [UnsafeCell<DataJob>; CAPACITY],
    /// The result of each job of the round (written by the thread that ran it).
    done: [AtomicBool; CAPACITY],
    /// Jobs in the round, and the next one to take.
    count: AtomicUsize,
    next: AtomicUsize,
    /// [`OPEN`] and the number of workers in the round.
    state: AtomicU32,
    /// The generation of rounds, bumped for each (and to stop): the workers sleep on it.
    round: AtomicU32,
    /// The loop's thread sleeps until `state` is 0.
    waiting: AtomicBool,
    stop: AtomicBool,
}

// SAFETY: `jobs` is written only by the pool's owner while no worker is in a round
// (`push`; see the module documentation) and read during a round; each job's buffer is
// touched by the one thread that took its index. Everything else is atomics.
unsafe impl Sync for Shared {}

impl Shared {
    /// Takes and runs jobs of the round until none is left.
    fn work(&self, count: usize) {
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            if k >= count {
                return;
            }
            // SAFETY: job k was written before the round was opened (the Release of
            // `state` orders it before this thread's Acquire on joining); index k is
            // this thread's alone, and the pool's owner keeps the job's cipher and buffer
            // alive and untouched until `run` returns, which waits for this thread to
            // leave the round (`push`'s contract).
            let ok = unsafe { (*self.jobs[k].get()).run() };
            self.done[k].store(ok, Ordering::Relaxed);
        }
    }

    /// Enters the round if it is open.
    fn join(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & OPEN != 0 {
            match self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// A worker's loop. Signals are the loop's thread's (see `signals::block_all`).
    fn worker(&self) {
        crate::sys::signals::block_all();
        let mut seen = 0u32;
        loop {
            let r = self.round.load(Ordering::Acquire);
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            if r == seen {
                futex_wait(&self.round, r);
                continue;
            }
            seen = r;
            if !self.join() {
                continue;
            }
            // (the count of the round joined: it only changes while no worker is in one)
            self.work(self.count.load(Ordering::Relaxed));
            // The last one out of a closed round wakes the loop's thread if it sleeps
            // (SeqCst with its store of `waiting` and load of `state`: one of the two sees
            // the other's).
            if self.state.fetch_sub(1, Ordering::SeqCst) == 1 && self.waiting.load(Ordering::SeqCst)
            {
                futex_wake(&self.state, 1);
            }
        }
    }
}

/// The worker threads and the jobs of one batch. See the module documentation.
pub struct CryptoPool {
    shared: Arc<Shared>,
    /// (joined in `drop`, never detached)
    workers: Vec<ManuallyDrop<Thread>>,
    len: usize,
}

impl CryptoPool {
    /// A pool of `threads` threads: the caller's and `threads - 1` workers (fewer if
    /// the system will not make them; see [`CryptoPool::threads`]).
    pub fn new(threads: usize) -> CryptoPool {
        let shared = Arc::new(Shared {
            jobs: [const { UnsafeCell::new(DataJob::EMPTY) }; CAPACITY],
            done: [const { AtomicBool::new(false) }; CAPACITY],
            count: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            state: AtomicU32::new(0),
            round: AtomicU32::new(0),
            waiting: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let mut workers = Vec::with_capacity(threads.saturating_sub(1));
        for _ in 1..threads {
            let s = Arc::clone(&shared);
            match threads::spawn(move || s.worker()) {
                Ok(t) => workers.push(ManuallyDrop::new(t)),
                Err(_) => break,
            }
        }
        CryptoPool {
            shared,
            workers,
            len: 0,
        }
    }

    /// Threads that do the work, the caller's included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Jobs waiting for [`CryptoPool::run`].
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == CAPACITY
    }

    /// Adds a job to the batch; its index is the one returned. False when full (run
    /// and clear first).
    ///
    /// The caller keeps the job's session and buffer alive, not moved and untouched
    /// (other than by other jobs' disjoint bytes) until [`CryptoPool::run`] has
    /// returned: the sessions of the tunnel are not replaced, and the buffer is not
    /// read, written or sent, between the `push` and the `run` (the tunnel's UDP
    /// path does both within one call of the loop).
    pub fn push(&mut self, job: DataJob) -> bool {
        if self.is_full() {
            return false;
        }
        // SAFETY: no worker is in a round (`run` takes `&mut self` and returns only once
        // every worker has left its round), so no other thread reads the slot.
        unsafe { *self.shared.jobs[self.len].get() = job };
        self.len += 1;
        true
    }

    /// Runs every job of the batch: on this thread alone below [`MIN_PARALLEL`] jobs,
    /// else on all threads; returns when all are done.
    pub fn run(&mut self) {
        let (s, n) = (&*self.shared, self.len);
        if n < MIN_PARALLEL || self.workers.is_empty() {
            s.next.store(0, Ordering::Relaxed);
            s.work(n);
            return;
        }
        s.count.store(n, Ordering::Relaxed);
        s.next.store(0, Ordering::Relaxed);
        s.state.store(OPEN, Ordering::Release);
        s.round.fetch_add(1, Ordering::Release);
        futex_wake(&s.round, i32::MAX);
        s.work(n);
        s.state.fetch_and(!OPEN, Ordering::Relaxed);
        // Every job is taken; wait for the workers still in the round.
        let mut spins = 0;
        loop {
            if s.state.load(Ordering::Acquire) == 0 {
                break;
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            s.waiting.store(true, Ordering::SeqCst);
            let v = s.state.load(Ordering::SeqCst);
            if v != 0 {
                futex_wait(&s.state, v);
            }
            s.waiting.store(false, Ordering::Relaxed);
        }
    }

    /// After [`CryptoPool::run`]: whether job `k` sealed, or opened an authentic message.
    pub fn opened(&self, k: usize) -> bool {
        k < self.len && self.shared.done[k].load(Ordering::Relaxed)
    }

    /// Empties the batch (after `run`).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl Drop for CryptoPool {
    /// Stops and joins the workers.
    fn drop(&mut self) {
        let s = &self.shared;
        s.stop.store(true, Ordering::Release);
        s.round.fetch_add(1, Ordering::Release);
        futex_wake(&s.round, i32::MAX);
        for t in std::mem::take(&mut self.workers) {
            ManuallyDrop::into_inner(t).join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::noise::{
        loopback_pair, open, open_later, seal, seal_later, DATA_HEADER_LEN, DATA_OVERHEAD,
    };

    fn packet(i: usize) -> Vec<u8> {
        (0..100 + i * 13).map(|b| (b * 7 + i) as u8).collect()
    }

    /// Seals `count` packets through the pool (job k = packet k, counter k) and checks
    /// each against `noise::seal`; then opens them through the pool, every third one
    /// with a broken tag, and checks each result where it belongs.
    fn round_trip(threads: usize, count: usize) -> usize {
        let (cli, srv) = loopback_pair(3);
        let mut pool = CryptoPool::new(threads);
        let mut bufs: Vec<Vec<u8>> = (0..count)
            .map(|i| vec![0u8; packet(i).len() + DATA_OVERHEAD])
            .collect();
        for (i, b) in bufs.iter_mut().enumerate() {
            let (n, job) = seal_later(&cli, 9, i as u64, &packet(i), b).unwrap();
            assert_eq!(n, b.len());
            assert!(pool.push(job));
        }
        assert_eq!(pool.len(), count);
        pool.run();
        for (i, b) in bufs.iter().enumerate() {
            assert!(pool.opened(i));
            let mut want = vec![0u8; b.len()];
            seal(&cli, 9, i as u64, &packet(i), &mut want).unwrap();
            assert_eq!(b, &want, "packet {i} sealed as noise::seal does");
            let mut out = vec![0u8; b.len()];
            assert_eq!(open(&srv, i as u64, b, &mut out), Some(packet(i).len()));
        }
        pool.clear();
        assert!(pool.is_empty());
        for (i, b) in bufs.iter_mut().enumerate() {
            if i % 3 == 1 {
                let last = b.len() - 1;
                b[last] ^= 1;
            }
            assert!(pool.push(open_later(&srv, i as u64, b).unwrap()));
        }
        pool.run();
        for (i, b) in bufs.iter().enumerate() {
            let good = i % 3 != 1;
            assert_eq!(pool.opened(i), good, "job {i}");
            if good {
                assert_eq!(&b[DATA_HEADER_LEN..b.len() - 16], &packet(i)[..]);
            }
        }
        pool.clear();
        pool.threads()
    }

    #[test]
    fn every_job_is_done_and_its_result_stays_with_it() {
        assert_eq!(round_trip(4, CAPACITY), 4);
        assert_eq!(round_trip(2, 46), 2);
        assert_eq!(round_trip(1, 20), 1);
        // many rounds in a row: no worker is left behind in an old one
        let (cli, _) = loopback_pair(3);
        let mut pool = CryptoPool::new(3);
        let mut buf = vec![0u8; 16 * (1400 + DATA_OVERHEAD)];
        for round in 0..500u64 {
            for (k, b) in buf.chunks_mut(1400 + DATA_OVERHEAD).enumerate() {
                let c = round * 16 + k as u64;
                let (_, job) = seal_later(&cli, 1, c, &[round as u8; 1400], b).unwrap();
                pool.push(job);
            }
            pool.run();
            for k in 0..16 {
                assert!(pool.opened(k));
            }
            pool.clear();
        }
        let mut want = vec![0u8; 1400 + DATA_OVERHEAD];
        seal(&cli, 1, 499 * 16 + 15, &[243; 1400], &mut want).unwrap();
        assert_eq!(&buf[15 * want.len()..], &want[..]);
    }

    #[test]
    fn a_full_pool_takes_no_more_and_small_batches_stay_on_the_callers_thread() {
        let (cli, _) = loopback_pair(3);
        let mut pool = CryptoPool::new(2);
        let mut buf = vec![0u8; (CAPACITY + 1) * (64 + DATA_OVERHEAD)];
        let mut jobs = buf
            .chunks_mut(64 + DATA_OVERHEAD)
            .enumerate()
            .map(|(i, b)| seal_later(&cli, 1, i as u64, &[1; 64], b).unwrap().1);
        for _ in 0..CAPACITY {
            assert!(pool.push(jobs.next().unwrap()));
        }
        assert!(pool.is_full());
        assert!(!pool.push(jobs.next().unwrap()));
        pool.clear();
        // Below MIN_PARALLEL: no round is published to the workers.
        let before = pool.shared.round.load(Ordering::Relaxed);
        let mut small = vec![0u8; (MIN_PARALLEL - 1) * (64 + DATA_OVERHEAD)];
        for (i, b) in small.chunks_mut(64 + DATA_OVERHEAD).enumerate() {
            pool.push(seal_later(&cli, 1, i as u64, &[2; 64], b).unwrap().1);
        }
        pool.run();
        assert_eq!(
            pool.shared.round.load(Ordering::Relaxed),
            before,
            "no round for the workers"
        );
        let mut want = vec![0u8; 64 + DATA_OVERHEAD];
        for (i, b) in small.chunks(64 + DATA_OVERHEAD).enumerate() {
            assert!(pool.opened(i));
            seal(&cli, 1, i as u64, &[2; 64], &mut want).unwrap();
            assert_eq!(b, &want[..]);
        }
        pool.clear();
        // One more job: a round for the workers.
        for (i, b) in small.chunks_mut(64 + DATA_OVERHEAD).enumerate() {
            pool.push(seal_later(&cli, 1, i as u64, &[2; 64], b).unwrap().1);
        }
        let mut one = vec![0u8; 64 + DATA_OVERHEAD];
        pool.push(seal_later(&cli, 1, 99, &[2; 64], &mut one).unwrap().1);
        pool.run();
        assert_eq!(
            pool.shared.round.load(Ordering::Relaxed),
            before.wrapping_add(1)
        );
        assert!((0..MIN_PARALLEL).all(|k| pool.opened(k)));
    }

    #[test]
    fn dropping_the_pool_ends_its_threads() {
        let pool = CryptoPool::new(4);
        assert_eq!(pool.threads(), 4);
        // each worker holds the shared state until it returns
        let shared = Arc::downgrade(&pool.shared);
        assert_eq!(shared.strong_count(), 4);
        drop(pool);
        assert_eq!(shared.strong_count(), 0, "every worker has ended");
        let pool = CryptoPool::new(1);
        assert_eq!(pool.threads(), 1);
        drop(pool);
        assert_eq!(threads_for(3), 3);
        assert!((1..=MAX_AUTO).contains(&threads_for(0)));
    }
}
