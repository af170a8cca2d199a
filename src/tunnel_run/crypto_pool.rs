//! The tunnel's ChaCha20-Poly1305 on several cores: a fixed pool of worker threads that,
//! together with the loop's own thread, seal or open one batch of data messages
//! ([`DataJob`]s) at a time. The loop records the jobs in order ([`CryptoPool::push`]),
//! [`CryptoPool::run`] does them all and returns when they are done, and the loop goes
//! on in order with their results ([`CryptoPool::opened`]). Nothing is allocated after
//! [`CryptoPool::new`]; no 64-bit atomics (32-bit mips and ARMv6 have none).
//!
//! One round: the jobs and their number are published under the mutex with a new
//! generation and the round marked open; the workers are woken; every thread takes jobs
//! by an atomic index until none is left; the loop's thread closes the round under the
//! mutex (a worker that wakes later stays out of it) and waits until the workers that
//! joined have left it. So no worker touches a job or a buffer once `run` has returned.
use crate::sys::threads::{self, Thread};
use crate::tunnel::noise::DataJob;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Jobs per round at most (when full, the loop runs them and goes on).
pub const CAPACITY: usize = 128;
/// Smaller batches are done on the loop's thread alone: waking workers costs more than
/// a few packets (pings, TCP ACKs) take.
pub const MIN_PARALLEL: usize = 8;
/// Most threads (the loop's included) when the count is left to the number of CPUs.
pub const MAX_AUTO: usize = 8;
/// How long the loop's thread spins for the workers' last jobs before it sleeps.
const SPINS: u32 = 2_000;

/// The threads for `--threads N`: N, or (0) one per online CPU up to [`MAX_AUTO`].
pub fn threads_for(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        threads::online_cpus().clamp(1, MAX_AUTO)
    }
}

struct Round {
    generation: u32,
    /// Workers may still join this round.
    open: bool,
    count: usize,
    stop: bool,
}

struct Shared {
    jobs: Box<[UnsafeCell<DataJob>]>,
    /// The result of each job of the round (written by the thread that ran it).
    done: Box<[AtomicBool]>,
    /// The next job to take.
    next: AtomicUsize,
    /// Workers inside the current round.
    active: AtomicUsize,
    /// The loop's thread sleeps until `active` is 0.
    waiting: AtomicBool,
    round: Mutex<Round>,
    wake: Condvar,
    idle: Condvar,
}

// SAFETY: `jobs` is written only by the pool's owner between rounds (`push`, while no
// worker is in a round: see the module documentation) and read during a round; each
// job's buffer is touched by the one thread that took its index. Everything else is
// atomics or under the mutex.
unsafe impl Sync for Shared {}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Round> {
        self.round.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes and runs jobs of the round until none is left.
    fn work(&self, count: usize) {
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            if k >= count {
                return;
            }
            // SAFETY: job k was written before the round was published (the mutex
            // orders it before this read); index k is taken by this thread alone, and
            // the pool's owner keeps the job's cipher and buffer alive and untouched
            // until `run` returns, which waits for this round to be left (`push`'s
            // contract).
            let ok = unsafe { (*self.jobs[k].get()).run() };
            self.done[k].store(ok, Ordering::Relaxed);
        }
    }

    fn worker(&self) {
        threads::block_signals();
        let mut seen = 0u32;
        loop {
            let count = {
                let mut r = self.lock();
                loop {
                    if r.stop {
                        return;
                    }
                    if r.generation != seen {
                        seen = r.generation;
                        if r.open {
                            self.active.fetch_add(1, Ordering::Relaxed);
                            break r.count;
                        }
                    }
                    r = self.wake.wait(r).unwrap_or_else(|e| e.into_inner());
                }
            };
            self.work(count);
            // The last one out wakes the loop's thread if it sleeps (SeqCst with its
            // store of `waiting` and load of `active`: one of the two sees the other).
            if self.active.fetch_sub(1, Ordering::SeqCst) == 1
                && self.waiting.load(Ordering::SeqCst)
            {
                drop(self.lock());
                self.idle.notify_one();
            }
        }
    }
}

/// The worker threads and the jobs of one batch. See the module documentation.
pub struct CryptoPool {
    shared: Arc<Shared>,
    workers: Vec<Thread>,
    len: usize,
}

impl CryptoPool {
    /// A pool of `threads` threads: the caller's and `threads - 1` workers (fewer if
    /// the system will not make them; see [`CryptoPool::threads`]).
    pub fn new(threads: usize) -> CryptoPool {
        let shared = Arc::new(Shared {
            jobs: (0..CAPACITY)
                .map(|_| UnsafeCell::new(DataJob::EMPTY))
                .collect(),
            done: (0..CAPACITY).map(|_| AtomicBool::new(false)).collect(),
            next: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            round: Mutex::new(Round {
                generation: 0,
                open: false,
                count: 0,
                stop: false,
            }),
            wake: Condvar::new(),
            idle: Condvar::new(),
        });
        let mut workers = Vec::with_capacity(threads.saturating_sub(1));
        for _ in 1..threads {
            let s = Arc::clone(&shared);
            match threads::spawn(move || s.worker()) {
                Ok(t) => workers.push(t),
                Err(e) => {
                    log::warn!(
                        "crypto thread not started ({e}): {} threads",
                        workers.len() + 1
                    );
                    break;
                }
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
        // SAFETY: no round is in progress (`run` takes `&mut self` and returns only
        // once every worker has left its round), so no other thread reads the slot.
        unsafe { *self.shared.jobs[self.len].get() = job };
        self.len += 1;
        true
    }

    /// Runs every job of the batch: on this thread alone below [`MIN_PARALLEL`] jobs,
    /// else on all threads; returns when all are done.
    pub fn run(&mut self) {
        let (s, n) = (&*self.shared, self.len);
        if n < MIN_PARALLEL || self.workers.is_empty() {
            for k in 0..n {
                // SAFETY: no round is in progress (as in `push`); `push`'s contract
                // keeps the job's cipher and buffer valid.
                let ok = unsafe { (*s.jobs[k].get()).run() };
                s.done[k].store(ok, Ordering::Relaxed);
            }
            return;
        }
        s.next.store(0, Ordering::Relaxed);
        {
            let mut r = s.lock();
            r.generation = r.generation.wrapping_add(1);
            r.open = true;
            r.count = n;
        }
        s.wake.notify_all();
        s.work(n);
        s.lock().open = false;
        // Every job is taken; wait for the workers still in the round.
        let mut spins = 0;
        while s.active.load(Ordering::Acquire) != 0 {
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let mut r = s.lock();
            s.waiting.store(true, Ordering::SeqCst);
            while s.active.load(Ordering::SeqCst) != 0 {
                r = s.idle.wait(r).unwrap_or_else(|e| e.into_inner());
            }
            s.waiting.store(false, Ordering::Relaxed);
            break;
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
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        for t in self.workers.drain(..) {
            t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::key::Key;
    use crate::tunnel::noise::{
        open, open_later, respond, seal, seal_later, HandshakeKey, Initiator, Transport,
        DATA_HEADER_LEN, DATA_OVERHEAD, MODE_TUN,
    };

    fn pair() -> (Transport, Transport) {
        let k = HandshakeKey::new(Key::from_bytes([3; 32]));
        let mut init = [0u8; 256];
        let (mut ini, n) = Initiator::start(&k, 1, MODE_TUN, 1, &mut init).unwrap();
        let mut resp = [0u8; 256];
        let (_, m, srv) = respond(&k, MODE_TUN, &init[..n], 2, &mut resp).unwrap();
        ini.finish(&resp[..m]).unwrap();
        (ini.into_transport().unwrap(), srv)
    }

    fn packet(i: usize) -> Vec<u8> {
        (0..100 + i * 13).map(|b| (b * 7 + i) as u8).collect()
    }

    /// Seals `count` packets through the pool (job k = packet k, counter k) and checks
    /// each against `noise::seal`; then opens them through the pool, every third one
    /// with a broken tag, and checks each result where it belongs.
    fn round_trip(threads: usize, count: usize) -> usize {
        let (cli, srv) = pair();
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
        let (cli, _) = pair();
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
        let (cli, _) = pair();
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
        let before = pool.shared.lock().generation;
        let mut small = vec![0u8; (MIN_PARALLEL - 1) * (64 + DATA_OVERHEAD)];
        for (i, b) in small.chunks_mut(64 + DATA_OVERHEAD).enumerate() {
            pool.push(seal_later(&cli, 1, i as u64, &[2; 64], b).unwrap().1);
        }
        pool.run();
        assert_eq!(
            pool.shared.lock().generation,
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
        assert_eq!(pool.shared.lock().generation, before.wrapping_add(1));
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
