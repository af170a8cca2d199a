//! A global allocator that counts allocations made on threads that asked to be
//! counted (libtest's own threads allocate at times of their choosing), and a fake
//! packet device, for the tests that prove a hot loop allocates nothing.
//! Each such test binary declares `#[global_allocator] static A: Counting = Counting;`.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tunbox::reflect::{PacketIo, Shared};

pub struct Counting;
pub static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    pub static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(p, l, n) }
    }
}

/// Hands out `total` packets cycling through `pkts`, then raises `done` (which the
/// loop's stop check reads) and reports WouldBlock; counts what the loop sends back.
pub struct FakeIo<'a> {
    pub pkts: &'a [Vec<u8>],
    pub given: usize,
    pub total: usize,
    pub sent: usize,
    pub done: &'a Cell<bool>,
}

impl PacketIo for FakeIo<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.given == self.total {
            self.done.set(true);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let p = &self.pkts[self.given % self.pkts.len()];
        self.given += 1;
        buf[..p.len()].copy_from_slice(p);
        Ok(p.len())
    }
    fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sent += 1;
        Ok(buf.len())
    }
    fn wait(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A [`FakeIo`] that stops the loop's threads once it has handed out every packet.
/// Half-way it waits for `go` (counting itself in `paused`), so the test can ask for
/// the counters while the loop runs.
pub struct StopIo<'a> {
    pub inner: FakeIo<'a>,
    pub shared: &'a Shared,
    pub paused: &'a AtomicUsize,
    pub go: &'a AtomicBool,
}

impl PacketIo for StopIo<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.inner.given == self.inner.total / 2 && !self.go.load(Ordering::Relaxed) {
            self.paused.fetch_add(1, Ordering::Relaxed);
            while !self.go.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
        }
        self.inner.recv(buf)
    }
    fn send(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.send(buf)
    }
    fn wait(&mut self) -> std::io::Result<()> {
        if self.inner.done.get() {
            self.shared.request_stop();
        }
        Ok(())
    }
}
