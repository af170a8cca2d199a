//! TUN/TAP devices through /dev/net/tun. Ioctl numbers come from nix's macros, which
//! encode direction and size per architecture (they differ on mips).
use super::SysError;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// What the device carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// IP packets (IFF_TUN).
    #[default]
    Tun,
    /// Ethernet frames (IFF_TAP).
    Tap,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "tun" => Ok(Mode::Tun),
            "tap" => Ok(Mode::Tap),
            _ => Err(format!("'{s}' is not a device mode: use tun or tap")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Tun => "tun",
            Mode::Tap => "tap",
        }
    }
}

const TUN_IOC_MAGIC: u8 = b'T';
// TUNSETIFF is declared _IOW, but the kernel writes the chosen name back into the
// ifreq, so the binding takes a mutable pointer.
nix::ioctl_readwrite_bad!(
    tunsetiff,
    nix::request_code_write!(TUN_IOC_MAGIC, 202, std::mem::size_of::<libc::c_int>()),
    libc::ifreq
);
nix::ioctl_write_int!(tunsetpersist, TUN_IOC_MAGIC, 203);
nix::ioctl_write_int!(tunsetowner, TUN_IOC_MAGIC, 204);
nix::ioctl_write_int!(tunsetgroup, TUN_IOC_MAGIC, 206);
nix::ioctl_write_int!(tunsetoffload, TUN_IOC_MAGIC, 208);
nix::ioctl_write_ptr!(tunsetvnethdrsz, TUN_IOC_MAGIC, 216, libc::c_int);

/// TUNSETIFF flags beyond the device kind (linux/if_tun.h).
const IFF_VNET_HDR: libc::c_int = 0x4000;
const IFF_MULTI_QUEUE: libc::c_int = 0x0100;

/// TUNSETOFFLOAD bits (linux/if_tun.h): what the device may hand over unfinished.
pub const TUN_F_CSUM: u32 = 0x01;
pub const TUN_F_TSO4: u32 = 0x02;
pub const TUN_F_TSO6: u32 = 0x04;
pub const TUN_F_TSO_ECN: u32 = 0x08;
pub const TUN_F_USO4: u32 = 0x20;
pub const TUN_F_USO6: u32 = 0x40;

/// How a device is opened besides its name and kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// Every packet read or written starts with a `virtio_net_hdr` (IFF_VNET_HDR); see
    /// [`crate::wire::virtio`].
    pub vnet_hdr: bool,
    /// One of several queues of the device (IFF_MULTI_QUEUE): open it once per queue.
    pub multi_queue: bool,
}

/// An open TUN/TAP device. Closing it removes a non-persistent device.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
    mode: Mode,
}

pub(super) fn ifreq_for(name: &str, flags: libc::c_int) -> Result<libc::ifreq, SysError> {
    if name.len() >= libc::IFNAMSIZ || name.contains('/') || name.contains(char::is_whitespace) {
        return Err(SysError::new(format!(
            "'{name}' is not a valid interface name (at most {} characters, no '/' or spaces)",
            libc::IFNAMSIZ - 1
        )));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    Ok(req)
}

fn name_of(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Tun {
    /// Creates the device, or attaches to an existing persistent one. `name` may be
    /// empty or contain `%d` to let the kernel choose; [`Tun::name`] tells the result.
    pub fn open(name: &str, mode: Mode) -> Result<Tun, SysError> {
        Self::open_with(name, mode, OpenFlags::default())
    }

    /// [`Tun::open`] with a virtio header and/or as one queue of a multi-queue device.
    /// Opening the same name again with `multi_queue` adds a queue.
    pub fn open_with(name: &str, mode: Mode, of: OpenFlags) -> Result<Tun, SysError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|e| SysError::os("cannot open /dev/net/tun", e))?;
        let kind = match mode {
            Mode::Tun => libc::IFF_TUN,
            Mode::Tap => libc::IFF_TAP,
        };
        let mut flags = kind | libc::IFF_NO_PI;
        if of.vnet_hdr {
            flags |= IFF_VNET_HDR;
        }
        if of.multi_queue {
            flags |= IFF_MULTI_QUEUE;
        }
        let mut req = ifreq_for(name, flags)?;
        // SAFETY: the fd is open and req is a valid ifreq the kernel may write back into.
        unsafe { tunsetiff(file.as_raw_fd(), &mut req) }.map_err(|e| {
            let what = format!("cannot create or attach {} device '{name}'", mode.as_str());
            if e == nix::errno::Errno::EINVAL || e == nix::errno::Errno::EBUSY {
                SysError::new(format!(
                    "{what}: {} (a device of that name exists with another mode or is in use)",
                    io::Error::from(e)
                ))
            } else {
                SysError::os(what, io::Error::from(e))
            }
        })?;
        Ok(Tun {
            name: name_of(&req),
            file,
            mode,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Keeps the device after the last process closes it (TUNSETPERSIST).
    pub fn set_persist(&self, on: bool) -> Result<(), SysError> {
        // SAFETY: plain int ioctl on an open tun fd.
        unsafe { tunsetpersist(self.file.as_raw_fd(), on as _) }
            .map(drop)
            .map_err(|e| SysError::os(format_args!("TUNSETPERSIST on {}", self.name), e))
    }

    /// Lets this uid attach without CAP_NET_ADMIN (TUNSETOWNER).
    pub fn set_owner(&self, uid: u32) -> Result<(), SysError> {
        // SAFETY: plain int ioctl on an open tun fd.
        unsafe { tunsetowner(self.file.as_raw_fd(), uid as _) }
            .map(drop)
            .map_err(|e| SysError::os(format_args!("TUNSETOWNER on {}", self.name), e))
    }

    /// Lets members of this gid attach without CAP_NET_ADMIN (TUNSETGROUP).
    pub fn set_group(&self, gid: u32) -> Result<(), SysError> {
        // SAFETY: plain int ioctl on an open tun fd.
        unsafe { tunsetgroup(self.file.as_raw_fd(), gid as _) }
            .map(drop)
            .map_err(|e| SysError::os(format_args!("TUNSETGROUP on {}", self.name), e))
    }

    /// Sets the size of the header before every packet (TUNSETVNETHDRSZ); the device
    /// must have been opened with `vnet_hdr`.
    pub fn set_vnet_hdr_len(&self, len: usize) -> Result<(), SysError> {
        let len = len as libc::c_int;
        // SAFETY: the kernel reads one int through the pointer.
        unsafe { tunsetvnethdrsz(self.file.as_raw_fd(), &len) }
            .map(drop)
            .map_err(|e| SysError::os(format_args!("TUNSETVNETHDRSZ on {}", self.name), e))
    }

    /// Lets the device hand over (and take) packets with the given `TUN_F_*` work left
    /// undone (TUNSETOFFLOAD). Kernels without a bit answer EINVAL.
    pub fn set_offload(&self, flags: u32) -> io::Result<()> {
        // SAFETY: plain int ioctl on an open tun fd.
        unsafe { tunsetoffload(self.file.as_raw_fd(), flags as _) }
            .map(drop)
            .map_err(io::Error::from)
    }

    /// A second descriptor for the same queue (dup).
    pub fn try_clone(&self) -> io::Result<Tun> {
        Ok(Tun {
            file: self.file.try_clone()?,
            name: self.name.clone(),
            mode: self.mode,
        })
    }

    /// Tries `wanted` sets of `TUN_F_*` bits in order and keeps the first the kernel
    /// takes; returns it (0: none taken, the device segments everything itself).
    pub fn negotiate_offload(&self, wanted: &[u32]) -> u32 {
        for &f in wanted {
            if self.set_offload(f).is_ok() {
                return f;
            }
        }
        let _ = self.set_offload(0);
        0
    }

    pub fn set_nonblocking(&self, on: bool) -> Result<(), SysError> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags =
            fcntl(&self.file, FcntlArg::F_GETFL).map_err(|e| SysError::os("fcntl F_GETFL", e))?;
        let mut flags = OFlag::from_bits_truncate(flags);
        flags.set(OFlag::O_NONBLOCK, on);
        fcntl(&self.file, FcntlArg::F_SETFL(flags))
            .map(drop)
            .map_err(|e| SysError::os("fcntl F_SETFL", e))
    }

    /// One packet (TUN) or frame (TAP) per call.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// One packet (TUN) or frame (TAP) per call.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        (&self.file).write(buf)
    }

    /// One packet from two pieces (a virtio header and the packet), in one `writev`.
    pub fn write2(&self, head: &[u8], body: &[u8]) -> io::Result<usize> {
        let iov = [io::IoSlice::new(head), io::IoSlice::new(body)];
        nix::sys::uio::writev(&self.file, &iov).map_err(io::Error::from)
    }
}

/// Whether a read or write error means the device itself is gone (deleted under us,
/// e.g. by `tunbox bridge down` while a reflector was attached to its tap): the kernel
/// answers EBADFD for a detached queue, and EFAULT, ENODEV, ENXIO or EIO on some paths.
pub fn device_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADFD)
            | Some(libc::EFAULT)
            | Some(libc::ENODEV)
            | Some(libc::ENXIO)
            | Some(libc::EIO)
    )
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
